"""Domain rewards for Cascade RL (C1 §4.3-4.7), one registry keyed by `RewardDomain`.

    from cascade.rewards import build_scorer
    scorer = build_scorer(stage_cfg.reward)          # RewardConfig: domain, code_switch, timeouts...
    results = scorer.score(rows)                     # list[RewardResult(reward, info)], one per row
    future = scorer.submit(rows)                     # same, in the background (async code RL)
    scorer.close()                                   # stops worker processes and sandboxes

Domains and their row fields (extra fields are ignored; a bad row gets reward 0 + info.error):
  math            response, ground_truth                     math.py (math-verify, pool)
  code            response, tests (LCB/TACO; HumanEval-style) code/ (bwrap sandbox)
  instruction     response, prompt, instruction_id_list, kwargs   instruction/ (IFEval+IFBench)
  reward_model    prompt, response                            reward_model/ (served or local RM)
  instruction_rm  instruction fields + group|uid|prompt_id    reward_model/domains.py (IF-RL, thinking)
  swe             response, golden_patch, original, prompt    swe/ (lexical + LLM judge)
Shared pieces stay at the top: registry.py, result.py, code_switch.py (the code-switching penalty
that wraps every domain), pool.py/worker.py (verifier subprocesses), text.py. CLI: `python -m
cascade.rewards score --domain D IN.jsonl OUT.jsonl` (cli.py). Untrusted code only ever runs in
the sandbox.
"""

from cascade.rewards.registry import (
    DomainScorer,
    RewardResult,
    build_scorer,
    register_reward,
    registered_domains,
)

__all__ = ["DomainScorer", "RewardResult", "build_scorer", "register_reward", "registered_domains"]
