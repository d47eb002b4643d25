"""Publishing CheXMix to the Hugging Face Hub, one concern per module.

- :mod:`.tree`: the repository tree (Parquet shards with embedded images, README, figure);
- :mod:`.card`: the dataset card, checked and rendered into README.md;
- :mod:`.licences`: which rows may be published, and the card's licence section;
- :mod:`.push`: the Hub client, one commit per push, one-line Hub errors;
- :mod:`.publish`: ``chexmix publish`` from start to end.
"""
