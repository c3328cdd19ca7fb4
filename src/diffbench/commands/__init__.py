"""The sub-commands of ``diffbench``: argument parsing only, one module a command (``add_parser`` and ``run``).

Every ``diffbench`` call builds every command's parser, so a command module imports nothing of the library
at its top beyond constants of light modules: ``run`` imports what the command uses when it runs
(``diffbench --help`` and ``--version`` then start in a third of a second instead of a second). The work
itself is the library's; these modules only turn arguments into its calls and print what it returns.
"""
