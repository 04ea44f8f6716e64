"""kmtr-stream bench: k-MTR against recon-then-analyze over real sockets."""
