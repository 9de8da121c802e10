"""What training and evaluation both need, below both: checkpoint I/O, multi-host start-up and gathering, and the
cached generator. `mm1_jax.train` and `mm1_jax.eval` import from here; nothing here imports them."""
