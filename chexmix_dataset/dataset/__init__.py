"""The CheXMix dataset: the ``datasets`` builder, its row schema, splits and the CXR/CT mix.

- :mod:`.builder`: :class:`~.builder.CheXMix` and :func:`~.builder.load_chexmix`.
- :mod:`.features`, :mod:`.rows`, :mod:`.lesions`: one row per image and its lesion instances.
- :mod:`.arrays`: a row decoded for training (image, instance masks, labels as numpy arrays).
- :mod:`.splits`, :mod:`.composition`: patient-level splits, the mix, what a split is made of.
- :mod:`.distributed`: the same build as Ray tasks (``chexmix build --engine ray``).
"""
