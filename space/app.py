"""The diffbench demo Space: Explore, Try a model, Score, Leaderboard, Inspect (Gradio 6 Blocks).

The app lives in the ``diffbench`` package (:mod:`diffbench.space.app`, on :mod:`diffbench.space.backend`
and :mod:`diffbench.space.leaderboard`), so this Space and ``diffbench space`` run the same code. On
start the datasets missing from the datasets cache are built from diffbench's embedded samples: the
Space runs offline. ``DIFFBENCH_SPACE_MODEL`` may point at a local CLIP-style model folder to use as
the default model; the leaderboard is kept in ``$DIFFBENCH_DATA_DIR`` (default: ``/data`` when the
Space has persistent storage).
"""

import logging

from diffbench.space.app import build_demo, launch

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
demo = build_demo()

if __name__ == "__main__":
    launch(demo)  # on a Space, GRADIO_SERVER_NAME=0.0.0.0 is set by the platform
