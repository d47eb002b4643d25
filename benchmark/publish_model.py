"""``chexmix publish-model RUN_DIR --repo-id ORG/NAME [--local-dir DIR]``: a model on the Hub.

``RUN_DIR`` is one run of ``chexmix bench`` (``runs/<cell>/<model>/seed<k>``, whose ``model/``
folder the harness writes) or that ``model/`` folder itself. The Hugging Face model repository
holds::

    model.safetensors   weights              config.json   what predict needs + provenance
    README.md           model card (YAML: license, tags, datasets, metrics; "not for clinical use")
    test_overlay.png    predicted lesion outlines on test images of the run (when the run drew it)

``--local-dir`` writes that tree and pushes nothing; otherwise it is pushed in one commit
through ``huggingface_hub`` (token from ``HF_TOKEN`` or ``hf auth login``), with the same
client code and error handling as ``chexmix publish``. Users then run
``chexmix predict --weights hub:ORG/NAME``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import yaml

from benchmark.model_files import CONFIG_FILE, WEIGHTS_FILE, read_model_config, resolve_model_folder
from chexmix_dataset.atomic import atomic_dir, check_replaceable
from chexmix_dataset.hub.push import check_repo_id, open_hub_repo, push_hub_tree, resolve_token

OVERLAY_FILE = "test_overlay.png"
TREE_NAMES = (WEIGHTS_FILE, CONFIG_FILE, "README.md", OVERLAY_FILE)
NOT_CLINICAL = ("**Research use only. Not a medical device, not validated for diagnosis, not for clinical "
                "use.** Outputs are lesion segmentations from a model trained on a small public research "
                "dataset and may be wrong.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a chexmix bench run folder (runs/<cell>/<model>/seed<k>) "
                                                   "or its model/ folder")
    parser.add_argument("--repo-id", required=True, help="Hub model repository, ORG/NAME")
    parser.add_argument("--local-dir", type=Path, default=None,
                        help="write the repository tree here and push nothing (default: push to the Hub)")
    parser.add_argument("--private", action="store_true", help="create the repository as private (default: public)")


def model_folder(run_dir: Path) -> Path:
    """The folder holding the run's model files: ``run_dir/model`` or ``run_dir`` itself."""
    inner = run_dir / "model"
    return resolve_model_folder(str(inner if inner.is_dir() else run_dir))


def _number(value: object) -> str:
    return "n/a" if not isinstance(value, (int, float)) or value != value else f"{value:.3f}"


def model_card(config: dict, repo_id: str) -> str:
    """README.md of the model repository: YAML metadata, then what the model is and how it did."""
    training = config.get("training", {})
    test = config.get("test", {})
    licences = config.get("training_licences", {})
    metadata = {
        "license": "other",
        "license_name": "research-only",
        "license_link": "README.md",  # its Licence section lists the training data's licences
        "library_name": "pytorch",
        "pipeline_tag": "image-segmentation",
        "tags": ["medical-imaging", "chest-x-ray", "covid-19", "lesion-segmentation", "chexmix", "not-for-clinical-use"],
        "datasets": [training["dataset_repo"]] if training.get("dataset_repo") else [],
        "model-index": [{"name": repo_id.split("/")[1], "results": [{
            "task": {"type": "image-segmentation", "name": "COVID-19 lung-lesion segmentation"},
            "dataset": {"type": "chexmix", "name": f"CheXMix {training.get('config', '?')} "
                                                  f"({training.get('split', '?')})"},
            "metrics": [{"type": "iou", "name": "mean IoU (test images)", "value": test.get("iou_mean")},
                        {"type": "dice", "name": "mean Dice", "value": test.get("dice_mean")}],
        }]}],
    }
    interval = test.get("iou_ci") or [None, None]
    composition = config.get("train_composition") or {}
    lines = [
        "---", yaml.safe_dump(metadata, sort_keys=False).strip(), "---", "",
        f"# {repo_id.split('/')[1]}: CheXMix lesion segmentation ({config['architecture']})", "",
        NOT_CLINICAL, "",
        "A COVID-19 lung-lesion segmentation model for frontal chest X-rays, trained with the CheXMix "
        "benchmark (after Ramesh, Rister & Rubin, arXiv:2105.08147).", "",
        "## Use", "",
        "```bash", f"chexmix predict my_xrays/ --weights hub:{repo_id} --out predictions", "```", "",
        f"Input: PNG/JPEG/DICOM chest X-rays, resized to {config['image_size']} px square. The lesion area is "
        f"cut at {config.get('threshold_kind') or 'threshold'} {_number(config['threshold'])} "
        f"({config.get('threshold_source', 'chosen during training')}).", "",
        "## Training", "",
        "| setting | value |", "|---|---|",
        *(f"| {key} | {value} |" for key, value in training.items()),
    ]
    if composition:
        lines += ["", f"Training set: {composition.get('cxr', '?')} real CXRs + {composition.get('ct_projections', '?')} "
                      f"CT projections of {composition.get('ct_cases', '?')} CTs (views {composition.get('views_deg', {})})."]
    lines += [
        "", "## Test results", "",
        "| metric | value |", "|---|---|",
        f"| mean IoU [95% CI, patient bootstrap] | {_number(test.get('iou_mean'))} "
        f"[{_number(interval[0])}, {_number(interval[1])}] |",
        f"| mean Dice | {_number(test.get('dice_mean'))} |",
        f"| AP50 | {_number(test.get('ap50'))} |",
        f"| test images (lesion-free share) | {test.get('test_images', 'n/a')} ({_number(test.get('lesion_free_fraction'))}) |",
        "", "Scores follow the CheXMix benchmark's rules (an empty prediction on a lesion-free image scores 1).", "",
        "## Licence", "",
        "The weights are derived from the training images, whose licences (rows per licence) were:", "",
        *(f"- {licence}: {count}" for licence, count in sorted(licences.items())),
        "", "Respect the most restrictive of them (several are non-commercial); research use only.", "",
    ]
    if config.get("has_overlay"):
        lines += ["## Test predictions", "", f"![predicted lesions on test images]({OVERLAY_FILE})", ""]
    return "\n".join(lines)


def write_model_tree(source: Path, config: dict, tree: Path, repo_id: str) -> None:
    """Write the model repository tree of the model folder ``source`` (its ``config.json`` read
    as ``config``) into the (new) folder ``tree``."""
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copyfile(source / name, tree / name)
    overlay = source / OVERLAY_FILE
    if overlay.is_file():
        shutil.copyfile(overlay, tree / OVERLAY_FILE)
    card = model_card({**config, "has_overlay": overlay.is_file()}, repo_id)
    (tree / "README.md").write_text(card, encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    repo_id = check_repo_id(args.repo_id)
    # Read everything first: a bad folder or config.json must fail before any file or Hub repository exists.
    source = model_folder(args.run_dir)
    config = read_model_config(source)
    if args.local_dir is not None:
        check_replaceable(args.local_dir, TREE_NAMES)
        with atomic_dir(args.local_dir, replaces=TREE_NAMES) as tmp:
            write_model_tree(source, config, tmp, repo_id)
        print(f"{args.local_dir}: model repository tree for {repo_id} written (nothing pushed)")
        return 0
    token = resolve_token()
    api = open_hub_repo(repo_id, token=token, private=args.private, repo_type="model")
    with tempfile.TemporaryDirectory(prefix="chexmix-publish-model-") as tmp:
        tree = Path(tmp)
        write_model_tree(source, config, tree, repo_id)
        commit_url, changed = push_hub_tree(api, tree, repo_id, token=token, repo_type="model",
                                            commit_message="Publish a CheXMix model")
    if commit_url is None:
        print(f"{repo_id}: the Hub already holds these files; nothing to commit")
    else:
        print(f"{repo_id}: {len(changed)} file(s) in one commit: {commit_url}")
    return 0
