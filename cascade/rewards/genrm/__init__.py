"""C2 RLHF with a pairwise generative reward model: `aggregate.py` (parsing a judgement and the
per-rollout aggregation, pure), `client.py` (a served chat judge over HTTP, shared with
`long_context_qa`), `reward.py` (the registered `genrm` domain)."""
