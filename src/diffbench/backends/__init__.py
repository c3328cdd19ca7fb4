"""Model backends that are not a transformers checkpoint loaded in-process.

- :mod:`diffbench.backends.openai_chat`: any OpenAI-compatible ``/v1/chat/completions`` endpoint (GPT-4o,
  Gemini's OpenAI-compatible endpoint, vLLM, TGI, ``transformers serve``), with a response cache.
- :mod:`diffbench.convert.open_clip`: an open_clip CLIP checkpoint -> a transformers ``CLIPModel``
  folder (no open_clip import needed).

The task layer (``diffbench.harness``) wires them in; nothing here imports it.
"""
