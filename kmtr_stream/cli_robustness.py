"""``kmtr-stream robustness``: heart anywhere, shifted cohort, broken inputs, OOD AUROC.

    kmtr-stream robustness --subjects 200 --out runs/robustness

Every figure is at one acceleration (default 4x equispaced), on the same test
subjects: the in-distribution test cohort in five poses (0/90/180/270 degrees,
and shifted by a quarter of the field of view), the held-out shifted cohort
(``SimConfig.randomize = "shifted"``), and deliberately broken inputs (noise
only; wrong orientation: k-space axes swapped, a mirrored heart). The OOD score's
AUROC separates the failures (myocardium Dice < 0.6) of the shifted cohort and
the broken inputs from the in-distribution subjects, all of them together and
each source alone. Dice is always against the anatomy in the image: the wrong
orientation's truth is the swapped label map, so a mirrored heart segmented
correctly is not a failure (its phenotypes are right; a mirror changes no volume).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from kmtr_stream.conventions import TEST_SEED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the robustness command."""
    parser.add_argument("--weights", default="default", help="k-MTR weights")
    parser.add_argument("--recon", default="recon", help="recon-then-analyze weights; '' to skip")
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--accel", type=int, default=4)
    parser.add_argument(
        "--cohort-size", type=int, default=0,
        help="size of cached test cohorts (in-distribution and shifted) to take the first "
        "--subjects from",
    )
    parser.add_argument("--cache-dir", default="runs/cache")
    parser.add_argument("--test-seed", type=int, default=TEST_SEED,
                        help="simulator seed of the test cohorts: fixed, so that weights "
                             "trained on any data seed meet the same test subjects")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/robustness")


class _Arrays:
    """A cohort held in memory (the fields ``training.data.make_batch`` reads)."""

    def __init__(self, base: Any, kspace: np.ndarray, labels: np.ndarray, image: np.ndarray):
        self.kspace, self.labels, self.image = kspace, labels, image
        self.phenotypes, self.diagnosis = base.phenotypes, base.diagnosis
        self.voxel_size_mm = base.voxel_size_mm

    def __len__(self) -> int:
        return int(self.kspace.shape[0])


def run(args: argparse.Namespace) -> int:
    """Run every check, print a table and write robustness.json."""
    import torch

    from kmtr_stream.evaluation.robustness import (
        broken_inputs,
        myo_dice,
        ood_report,
        renormalise,
        shift_centred,
        subject_ood,
    )
    from kmtr_stream.evaluation.run import evaluation_mask
    from kmtr_stream.kspace.pose import mirror_centred, rot90_centred
    from kmtr_stream.metrics import dice_per_class
    from kmtr_stream.model.io import read_weights
    from kmtr_stream.training.config import evaluation_data_config
    from kmtr_stream.training.data import build_cohort
    from kmtr_stream.training.predict import predict_cohort

    torch.set_num_threads(args.threads)
    models = {"kmtr": read_weights(args.weights)}
    if args.recon:
        models["recon"] = read_weights(args.recon)
    cfg = models["kmtr"].meta["training"]["config"]
    data = evaluation_data_config(cfg["data"], args.cache_dir, args.test_seed)
    n_calib = int(cfg["train"]["n_calib"])
    size = max(args.subjects, args.cohort_size)
    test = build_cohort("test", size, data).head(args.subjects)
    shifted_data = replace(data, sim={**data.sim, "randomize": "shifted"})
    shifted = build_cohort("test", size, shifted_data).head(args.subjects)
    k0 = np.asarray(test.kspace)
    lab0 = np.asarray(test.labels)
    img0 = np.asarray(test.image)
    n = k0.shape[-1]
    poses: dict[str, Any] = {}
    for turns in range(4):
        poses[f"rot{90 * turns}"] = _Arrays(
            test,
            renormalise(rot90_centred(k0, turns)),
            rot90_centred(lab0, turns),
            rot90_centred(img0, turns),
        )
    ks, ls = shift_centred(k0, lab0, n // 4)
    poses["shift_quarter_fov"] = _Arrays(test, ks, ls, np.roll(img0, n // 4, axis=-1))
    # the heart seen from the other side (another slice normal or file convention)
    poses["mirrored"] = _Arrays(
        test, mirror_centred(k0), mirror_centred(lab0), mirror_centred(img0))
    broken = {what: _Arrays(test, *arrays)
              for what, arrays in broken_inputs(k0, lab0, img0).items()}
    mask = evaluation_mask(k0.shape[-2], args.accel, n_calib, "equispaced", 0)
    report: dict[str, Any] = {"subjects": args.subjects, "accel": args.accel, "models": {}}
    for name, loaded in models.items():
        def predict(cohort: Any, what: str, _l: Any = loaded, _n: str = name) -> Any:
            return predict_cohort(
                _l, cohort, mask, 8, _l.phen_mean, _l.phen_std, True, f"{_n} {what}"
            )

        res: dict[str, Any] = {"poses": {}}
        in_scores = np.array([])
        for pose, cohort in poses.items():
            pred = predict(cohort, pose)
            d = dice_per_class(pred.labels, np.asarray(cohort.labels), 4)
            res["poses"][pose] = {
                s: float(np.nanmean(d[:, i])) for i, s in enumerate(("RV", "MYO", "LV"))
            }
            if pose == "rot0":
                in_scores = subject_ood(loaded, pred, cohort.voxel_size_mm)
        # (OOD score, myocardium Dice) per subject of each out-of-distribution source
        outs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        pred = predict(shifted, "shifted")
        d = dice_per_class(pred.labels, np.asarray(shifted.labels), 4)
        res["shifted"] = {
            "dice": {s: float(np.nanmean(d[:, i])) for i, s in enumerate(("RV", "MYO", "LV"))},
            "accuracy": float(
                (pred.logits.argmax(axis=1) == np.asarray(shifted.diagnosis)).mean()
            ),
        }
        outs["shifted"] = (
            subject_ood(loaded, pred, shifted.voxel_size_mm),
            myo_dice(pred, np.asarray(shifted.labels)),
        )
        res["broken"] = {}
        for what, cohort in broken.items():
            pred = predict(cohort, what)
            md = myo_dice(pred, np.asarray(cohort.labels))
            res["broken"][what] = {"dice_myo": float(np.nanmean(md))}
            outs[what] = (subject_ood(loaded, pred, cohort.voxel_size_mm), md)
        ood = loaded.meta.get("ood")
        if ood:
            threshold = float(ood["threshold"])
            res["ood"] = ood_report(
                in_scores,
                np.concatenate([sc for sc, _ in outs.values()]),
                np.concatenate([md for _, md in outs.values()]),
                threshold,
            )
            res["ood"]["by_source"] = {
                src: ood_report(in_scores, sc, md, threshold) for src, (sc, md) in outs.items()
            }
        report["models"][name] = res
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(json.dumps(report, indent=1))
    for name, res in report["models"].items():
        print(f"{name}: poses (Dice RV/MYO/LV)")
        for pose, d in res["poses"].items():
            print(f"  {pose:<18} {d['RV']:.3f} {d['MYO']:.3f} {d['LV']:.3f}")
        sd = res["shifted"]["dice"]
        print(
            f"  shifted cohort     {sd['RV']:.3f} {sd['MYO']:.3f} {sd['LV']:.3f} "
            f"acc {res['shifted']['accuracy']:.3f}"
        )
        for what, b in res["broken"].items():
            print(f"  {what:<18} MYO Dice {b['dice_myo']:.3f}")
        if "ood" in res:
            o = res["ood"]
            print(f"  OOD AUROC {o['auroc_failures_vs_in_distribution']:.3f} "
                  f"({o['n_failures']} failures; flagged: {o['flagged_in_distribution']:.1%} "
                  f"of in-distribution, {o['flagged_failures']:.1%} of failures)")
            for src, r in o["by_source"].items():
                print(f"    {src:<18} AUROC {r['auroc_failures_vs_in_distribution']:.3f} "
                      f"({r['n_failures']} failures), flagged {r['flagged_all_out']:.1%} "
                      f"of all its subjects")
    print(f"wrote {out / 'robustness.json'}")
    return 0
