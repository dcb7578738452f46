"""The local tools, kept apart from the Lambda entry points and out of the Lambda artifact: the admin CLI,
the demo, and the embedded AWS (moto) they run on."""
