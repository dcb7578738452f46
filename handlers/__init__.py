"""The ways in: Lambda handlers (api, stream, sweep, admin, requeue), the CLI and the local runtime."""
