"""2D chest X-ray files: reading images upright (EXIF), masks, and radiographs as a model sees them.

- :mod:`.images`: PNG/JPEG images and masks read upright, as viewers and VIA show them.
- :mod:`.radiographs`: a chest X-ray file (PNG/JPEG 8- or 16-bit, or DICOM) as model input.
"""
