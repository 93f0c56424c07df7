"""Training: the objective (losses, teacher, learned similarity, loss weights), the trainer, its callbacks
(E-step, codebook usage), pair data and its loading, validation and the recipe (flags and configs -> a
trainer).

Imports eval, search, model, data, audio and the base modules.
"""
