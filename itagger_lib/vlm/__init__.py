"""The VLM room: vision-language models as raters, at a controlled cost.

* contracts: :mod:`.base` (request, response, provider protocol), :mod:`.registry`
  (providers by name), :mod:`.sdk` (the base of the SDK providers :mod:`.openai_provider`
  and :mod:`.anthropic_provider`), :mod:`.stub`, :mod:`.secrets`;
* a run: :mod:`.rating` (``rate_with_vlm``) = :mod:`.plan` (what to send, at what bound)
  + :mod:`.execute` (the run record and its :mod:`.dispatch`-ed calls);
* money and memory: :mod:`.ledger` (calls, prices, cache, budgets), :mod:`.writer` (group
  commits), :mod:`.tokens` (input-token bounds);
* :mod:`.prompts`, :mod:`.sampling`, :mod:`.audit` (self-consistency), :mod:`.report`.

Only the registry is imported here, so ``import itagger_lib.vlm`` loads no SDK.
"""

from __future__ import annotations

from itagger_lib.vlm.registry import available_providers, get_provider, register_provider

__all__ = ["available_providers", "get_provider", "register_provider"]
