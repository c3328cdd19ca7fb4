"""The demo Space: one package, Gradio imported only in :mod:`diffbench.space.app`.

- :mod:`diffbench.space.backend`: the work without the UI (data, images, models, scoring), plain Python;
- :mod:`diffbench.space.leaderboard`: the persistent leaderboard (SQLite in the data folder);
- :mod:`diffbench.space.app`: the Gradio 6 Blocks layout and handlers (``build_demo``, ``launch``).

``space/app.py`` (the Hugging Face Space) and ``diffbench space`` both run :mod:`diffbench.space.app`.
"""
