"""Models: a character GPT (the paper's LM) and, in their own modules, the others."""
