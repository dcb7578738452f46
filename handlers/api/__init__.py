"""The player and admin HTTP API, one Lambda handler behind API Gateway (`handlers.api.app.handler`).

`app` wires the resolver, the gate and the routers; `gate` checks the raw request; `identity` reads the
caller from the JWT claims; `errors` holds the one exception -> (status, code) table; `models` the request and
response shapes; `views` turns records into response models; `players` and `admins` are the routes.
"""
