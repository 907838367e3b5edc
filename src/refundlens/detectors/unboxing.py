"""detectors/unboxing: the buyer's unboxing video against the claim photo.

Frames of the video that show the claim photo's scene in a new exposure support the buyer: the
damage was there when the parcel was opened (``unboxing.same_scene``, lowers the risk). A frame
that is the photo itself (identical, or a copy too close to tell) supports nothing: a "video"
made of the photo would vouch for any photo. A claim photo made from a
frame of that same video with something changed is the opposite: the damage was added after
(``unboxing.photo_differs_from_video``, localised). The comparison is the reference check of
``detectors/reference`` with the frames as references.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from ..media import Media
from .base import Context, Detector, Example, Finding, Reason, Region, Requirement

__all__ = ["UnboxingDetector"]


class UnboxingDetector(Detector):
    name = "unboxing"
    requires = frozenset({Requirement.UNBOXING})
    codes: ClassVar[dict[str, str]] = {
        "unboxing.same_scene": "A frame of the buyer's unboxing video shows the photo's scene: supports the buyer.",
        "unboxing.photo_differs_from_video": "The photo is a frame of the unboxing video with something changed.",
    }

    def analyze(self, claim: Media, context: Context) -> list[Finding]:
        frames = list(context.unboxing)
        if not frames:
            return []
        from .reference import compare_all

        outcomes = compare_all(claim, frames, context.settings, context.features)
        derived = [o for o in outcomes if o.verdict == "derived"]
        if derived:
            best = max(derived, key=lambda o: o.match.inliers if o.match else 0)
            mask = best.residual.edit_mask if best.residual is not None else None
            return [
                Finding(
                    "unboxing.photo_differs_from_video",
                    3.0,
                    0.8,
                    Reason(
                        f"The photo is the unboxing video's frame {best.reference.name} with a region changed: the change was made after the video.",
                        f"照片是开箱视频中的画面（{best.reference.name}），但有一块区域被改动：改动发生在录像之后。",
                    ),
                    best.facts(claim),
                    region=Region(mask, "mask") if mask is not None else None,
                    detector=self.name,
                )
            ]
        # Only a new exposure of the scene supports the buyer: a video of the photo itself (the
        # claim photo written 30 times into a 3-second clip) matched it as identical and took a
        # forged photo to "approve" (a security review). A photo taken out of the buyer's own
        # video is a copy of it too: it proves nothing the photo does not, and gets no support.
        same = [o for o in outcomes if o.verdict == "same_item_new_photo"]
        if same:
            best = max(same, key=lambda o: o.match.inliers if o.match else 0)
            inliers = best.match.inliers if best.match else 0
            return [
                Finding(
                    "unboxing.same_scene",
                    -1.5,
                    0.8,
                    Reason(
                        f"The buyer's unboxing video shows this scene (frame {best.reference.name}, {inliers} matching points): the photo fits what the parcel held when it was opened.",
                        f"买家的开箱视频拍到了同一场景（画面 {best.reference.name}，{inliers} 个匹配点）：照片与开箱时的情况一致。",
                    ),
                    {
                        "frame": best.reference.name,
                        "inliers": inliers,
                        "verdict": best.verdict,
                        "frames_compared": len(frames),
                    },
                    detector=self.name,
                )
            ]
        return []

    @classmethod
    def examples(cls) -> Sequence[Example]:
        from ._unboxing_examples import unboxing_examples

        return unboxing_examples()
