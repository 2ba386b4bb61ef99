"""The PyTorch networks of the neural models, one module per model.

Each module imports torch at its top, so that the networks are ordinary
module-level classes a linter or type checker reads; the model modules
import them inside methods, so ``import zenrec`` never imports torch.
"""
