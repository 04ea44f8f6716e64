"""Pure k-space math (array-backend agnostic): no I/O, no sockets."""
