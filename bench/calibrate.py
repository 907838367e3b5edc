"""Turn benchmark counts (dev split) into finding strengths: writes
src/refundlens/policy/calibration.yaml and bench/results/calibration.md.

    .venv/bin/python -m bench.calibrate     (after run_reference and run_provenance)
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from refundlens.calibration import log_likelihood_ratio

RESULTS = Path(__file__).resolve().parent / "results"
TABLE = Path(__file__).resolve().parents[1] / "src" / "refundlens" / "policy" / "calibration.yaml"
# Informational codes stay at 0 by design: the benchmark's population cannot speak for them
# (every generated forgery matches its reference, so "no match" would look like innocence).
# Label 2/3 ("possibly AI") is as detectable as label 1 but says less: its strength is a judgement
# (docs/findings.md), not a measurement this benchmark can make.
NOT_CALIBRATED = {
    "reference.no_match",
    "provenance.none_found",
    "provenance.c2pa_manifest",
    "provenance.c2pa_remote",
    "provenance.aigc_label_possible",
}
# Pixel codes measured by bench/run_forensics.py. pixels.recapture has no real or generated
# recaptures in that population and keeps its provisional strength. Capture codes (stripped EXIF,
# resized, double compressed) are not calibrated there: the generated forgeries are written
# without EXIF from camera JPEGs, so their counts would measure how we made them, not fraud.
FORENSICS_CODES = [
    "pixels.noise_inconsistency",
    "pixels.double_jpeg_inconsistency",
    "pixels.cfa_inconsistency",
    "pixels.painted_patch",
    "pixels.generator_traces",
    "pixels.copy_move",
    "pixels.no_sensor_noise",
    "pixels.upsampling_peaks",
]
REFERENCE_CODES = [
    "reference.derived",
    "reference.identical",
    "reference.near_copy_unresolved",
]
# Every forgery of the reference bench is made from the listing photo, so a new exposure never
# meets one there: the measured ratio of "same item, new photo" (about -5.9 once the close,
# unresolved matches left it) would clear claims that the bench never tested, such as the
# buyer's own photo with painted damage. It keeps its provisional strength.
NOT_MEASURABLE_HERE = ["reference.same_item_new_photo"]
# "The views agree" lowers the risk, so it must be measured like everything that raises it: a
# forger whose damage lies off the compared surface gets the same verdict as an honest buyer.
# Counted on the capture bench's dev pairs at the shipped difference threshold.
CAPTURE_VERDICTS = {"consistency.damage_confirmed": "confirmed"}
# With the buyer's box around the damage, "agrees" means the marked damage itself was compared:
# counted on the damaged dev pairs judged again with the mark, at the shipped mark threshold.
MARKED_CAPTURE_VERDICTS = {"consistency.marked_damage_confirmed": "confirmed"}


def _counts(pos: list[set[str]], neg: list[set[str]], code: str) -> dict[str, int]:
    return {
        "k_forged": sum(code in c for c in pos),
        "n_forged": len(pos),
        "k_genuine": sum(code in c for c in neg),
        "n_genuine": len(neg),
    }


def main() -> None:
    # Photos of the listing photo on a screen have their own table in the reference report and
    # their own, provisional strength: counting them here would calibrate derived/identical on
    # a population they were never meant to describe.
    reference = [
        r
        for r in json.loads((RESULTS / "reference.json").read_text())["rows"]
        if r["kind"] != "recaptured"
    ]
    provenance = json.loads((RESULTS / "provenance.json").read_text())
    codes: dict[str, dict[str, int | str]] = {}
    check: list[str] = []
    for split in ("dev", "test"):
        pos = [{r["code"]} for r in reference if r["split"] == split and r["positive"]]
        neg = [{r["code"]} for r in reference if r["split"] == split and not r["positive"]]
        for code in REFERENCE_CODES:
            counts = _counts(pos, neg, code)
            if split == "dev":
                codes[code] = {**counts, "data": "bench/results/reference.json, split dev"}
            else:
                check.append(f"| `{code}` | {log_likelihood_ratio(**counts):+.2f} | {counts} |")
        for code in NOT_MEASURABLE_HERE:
            counts = _counts(pos, neg, code)
            check.append(
                f"| `{code}` | not calibrated ({split}: would be "
                f"{log_likelihood_ratio(**counts):+.2f}): the bench's forgeries are all made from "
                f"the listing photo, so a new exposure never meets one | {counts} |"
            )
    camera = [set(c) for c in provenance["camera"]]
    for code in sorted({want for want, _ in provenance["marked"]} - NOT_CALIBRATED):
        # sensitivity on files written to carry this mark; specificity on real camera originals
        carriers = [set(found) for want, found in provenance["marked"] if want == code]
        codes[code] = {
            **_counts(carriers, camera, code),
            "data": "bench/results/provenance.json: files carrying the mark vs real camera originals",
        }
    capture_path = RESULTS / "capture.json"
    if capture_path.exists():
        from refundlens.detectors.consistency import Thresholds

        pairs = json.loads(capture_path.read_text())
        shipped, marked_at = str(Thresholds().difference), str(Thresholds().mark_difference)
        for key, at, verdicts, data in (
            (
                "verdicts",
                shipped,
                CAPTURE_VERDICTS,
                f"difference {shipped}: inconsistent pairs vs honest pairs",
            ),
            (
                "marked",
                marked_at,
                MARKED_CAPTURE_VERDICTS,
                f"marked, mark difference {marked_at}: inconsistent damaged pairs vs honest "
                "damaged pairs",
            ),
        ):
            for split in ("dev", "test"):
                rows_ = [r for r in pairs if r["split"] == split and at in r.get(key, {})]
                pos = [{r[key][at]} for r in rows_ if r["kind"].startswith("forged")]
                neg = [{r[key][at]} for r in rows_ if r["kind"].startswith("honest")]
                for code, verdict in verdicts.items():
                    counts = _counts(pos, neg, verdict)
                    if split == "dev":
                        codes[code] = {
                            **counts,
                            "data": f"bench/results/capture.json, split dev, {data}",
                        }
                    else:
                        check.append(
                            f"| `{code}` | {log_likelihood_ratio(**counts):+.2f} | {counts} |"
                        )
    forensics_path = RESULTS / "forensics.json"
    if forensics_path.exists():
        rows = json.loads(forensics_path.read_text())["rows"]
        for split in ("dev", "test"):
            pos = [
                set(r["codes"]) | set(r.get("other_codes", []))
                for r in rows
                if r["split"] == split and r["positive"]
            ]
            neg = [
                set(r["codes"]) | set(r.get("other_codes", []))
                for r in rows
                if r["split"] == split and not r["positive"]
            ]
            for code in FORENSICS_CODES:
                counts = _counts(pos, neg, code)
                if split == "dev" and counts["k_forged"] + counts["k_genuine"] == 0:
                    # No event either way: a smoothed ratio would only echo the sample sizes.
                    check.append(
                        f"| `{code}` | not calibrated: fired on nothing in dev | {counts} |"
                    )
                elif split == "dev":
                    codes[code] = {
                        **counts,
                        "data": "bench/results/forensics.json, split dev: forgeries vs authentic photos and their chat re-saves",
                    }
                else:
                    check.append(f"| `{code}` | {log_likelihood_ratio(**counts):+.2f} | {counts} |")
    table = {
        "version": 1,
        "formula": "strength = ln(((k_forged + 0.5) / (n_forged + 1)) / ((k_genuine + 0.5) / (n_genuine + 1)))",
        "codes": codes,
    }
    TABLE.write_text(
        "# Written by `python -m bench.calibrate` from benchmark counts; do not edit by hand.\n"
        + yaml.safe_dump(table, sort_keys=True, allow_unicode=True)
    )
    from refundlens import calibration

    calibration._bundled_table.cache_clear()  # later benches in this process read the new table
    lines = [
        "# Calibration of finding strengths",
        "",
        "Each strength is the log of a Jeffreys-smoothed likelihood ratio (see `refundlens/calibration.py`):",
        "",
        "    strength = ln(((k_forged + 0.5) / (n_forged + 1)) / ((k_genuine + 0.5) / (n_genuine + 1)))",
        "",
        "Reference codes are counted on the benchmark's **dev** split only; the test split's ratio is shown "
        "beside it as a check, never used. Provenance codes: sensitivity on files that carry the mark (labels "
        "written in every carrier; real generator outputs), specificity on real camera originals; they "
        "have no thresholds to tune, and their ratio is bounded by how many camera originals were measured. "
        "Pixel codes: forgeries (real Reddit edits, generated edits, Stable Diffusion outputs) against "
        "camera originals and their chat-app re-saves, dev split. Consistency codes: inconsistent damage "
        "against honest pairs of the capture bench, dev split, at the shipped threshold. Codes not listed keep their detector's provisional strength.",
        "",
        "| code | strength (ln LR) | counts | data |",
        "|---|---|---|---|",
    ]
    for code, row in sorted(codes.items()):
        counts = {k: row[k] for k in ("k_forged", "n_forged", "k_genuine", "n_genuine")}
        lines.append(
            f"| `{code}` | {log_likelihood_ratio(**counts):+.2f} | {counts} | {row['data']} |"
        )  # type: ignore[arg-type]
    lines += [
        "",
        "## Check on the test split (not used)",
        "",
        "| code | strength | counts |",
        "|---|---|---|",
        *check,
        "",
    ]
    (RESULTS / "calibration.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
