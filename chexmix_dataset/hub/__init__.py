"""Publishing CheXMix to the Hugging Face Hub: the repository tree, the dataset card, the push.

Which rows may be published at all is decided by :mod:`.licences`.
"""
