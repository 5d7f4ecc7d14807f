"""Supervised fine-tuning (C1 §3.2): packed rows (`data`) and the stage's hooks (`trainer`)."""
