"""The Bradley-Terry reward model (C1 §4.2): pair data (`data`), the scalar head and its
export (`head`), the loss and the stage's hooks (`trainer`)."""
