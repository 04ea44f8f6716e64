"""Built-in gadgets, one module per gadget type.

Each type is declared as a ``kmtr_stream.gadgets`` entry point in
``pyproject.toml`` (``kmtr_stream.chain.registry`` loads a module when a chain
first names its type); importing this package registers nothing by itself.
"""
