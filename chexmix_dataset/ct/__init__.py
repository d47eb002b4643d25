"""Chest CT volumes: reading NIfTI files, DICOM series and slice folders (HU, RAS+), and extra views.

- :mod:`.volume`: :func:`~.volume.load_ct` and :class:`~.volume.CTVolume`, whatever the storage.
- :mod:`.nifti`, :mod:`.dicom`: the two file formats, with clean errors on bad files.
- :mod:`.views`: the patient turned about the superior-inferior axis (extra frontal views).
"""
