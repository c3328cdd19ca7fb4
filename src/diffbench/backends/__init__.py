"""Model backends that are not a transformers checkpoint loaded by ``AutoModel``.

- :mod:`diffbench.backends.openai_chat`: any OpenAI-compatible ``/v1/chat/completions`` endpoint (GPT-4o,
  Gemini's OpenAI-compatible endpoint, vLLM, TGI, ``transformers serve``), with a response cache; its
  pieces: :mod:`~diffbench.backends.api_access` (the address and the key, redaction),
  :mod:`~diffbench.backends.chat_format` (what is sent, what comes back) and
  :mod:`~diffbench.backends.bounded_http` (the transport: a whole-request deadline, bounded reads).
- :mod:`diffbench.backends.blip_itc`: a BLIP retrieval checkpoint scored by its ITC embeddings, as the
  VisMin paper scored BLIP.
- :mod:`diffbench.backends.open_clip_model`: an open_clip checkpoint run in place (the ``[openclip]``
  extra); :mod:`diffbench.convert.open_clip` converts plain CLIP ones to a transformers folder instead.

The task layer (``diffbench.harness``) wires them in; nothing here imports it.
"""
