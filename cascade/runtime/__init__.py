"""The stage runtime: the one skeleton every training stage runs (`skeleton.run_training_stage`),
and what a stage is on disk: its directories and markers (`stage_dirs`), its manifest and
resolved config (`manifest`), preemption (`preemption`), per-step metrics (`metrics_logger`).

Trainers (`cascade.sft`, `cascade.reward_model`, `cascade.rl`) supply hooks and never import
this package; recipes and the launcher do.
"""
