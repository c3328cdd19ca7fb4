"""diffbench: fine-grained vision-language benchmarks on the Hugging Face stack.

Load a built benchmark with plain ``datasets``::

    >>> from datasets import load_dataset          # doctest: +SKIP
    >>> bench = load_dataset("vismin", split="test")  # after `diffbench build vismin`  # doctest: +SKIP
"""

__version__ = "0.1.0"
