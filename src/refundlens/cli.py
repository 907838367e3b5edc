"""The ``refundlens`` command line (Typer + Rich).

Exit status: 0 whatever the verdict; 2 on bad input or usage, with one line on stderr.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console as _RichConsole
from rich.markup import escape
from rich.table import Table

from . import __version__
from .cases.catalogue import check_order_times
from .cases.intake import parse_damage_boxes, refuse_too_small
from .config import Settings, SettingsError, load_settings
from .detectors.base import OrderFacts
from .errors import RefundlensError
from .fusion import Policy, load_policy
from .media import AnimatedMediaError, Media, load_media, utc_offset
from .pipeline import Assessment, analyze, describe_refusal
from .report import assessment_to_dict, write_file, write_finding_pictures, write_pictures

log = logging.getLogger("refundlens.cli")

if TYPE_CHECKING:
    from .store import Database

_TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _json_line(value: Any) -> str:
    """One line of JSON for a terminal or a pipe: UTF-8 text as it is (Chinese stays
    readable), and every character a terminal acts on escaped (JSON escapes C0 itself; DEL, C1
    such as U+009B, a CSI on xterm, and bidirectional overrides are written as \\uXXXX)."""
    text = json.dumps(value, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class Console(_RichConsole):
    """Rich's console, with every string it is given cleaned of terminal controls. Findings
    quote what a photo says about itself (EXIF Software, a C2PA claim): an escape sequence there
    cleared an operator's screen, planted links or wrote the clipboard (an attacker's probe).
    Rich's own styling is added after this and is kept."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(_TERMINAL_CONTROL.sub("\ufffd", text), **kwargs)


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Screen after-sales claim photos for forged evidence.",
)
EXIT_BAD_INPUT = 2


def _fail(message: str) -> typer.Exit:
    sys.stderr.write(f"refundlens: {message}\n")
    return typer.Exit(EXIT_BAD_INPUT)


def _checked_policy(settings: Settings) -> Policy:
    """The policy file, with its routing rules, read as the service reads them: a bad one is
    said in one line before anything is created (a walkthrough: ``serve`` printed the first
    admin key, then a traceback of 60 lines; ``check`` passed a policy the service refused)."""
    from .cases.routing import RoutingRules

    try:
        policy = load_policy(settings.policy_path or None)
        RoutingRules.from_policy(policy.routing)
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    return policy


def _language(lang: str) -> str:
    """``--lang`` as ``zh`` or ``en`` (``zh_CN``, ``zh-CN``, ``EN`` too); anything else is the
    user's mistake: ``report --lang fr`` wrote an English report without a word, while
    ``check --lang fr`` was refused (a new user's walkthrough)."""
    word = lang.strip().lower().replace("-", "_")
    if word in ("zh", "zh_cn"):
        return "zh"
    if word == "en":
        return "en"
    raise _fail("error [usage] --lang must be zh or en.")


def _output_folder(out: Path | None, option: str = "--out") -> Path | None:
    """``out`` made ready for the pictures and report.json, before any analysis runs: a
    folder, created where missing; a file there, or a place that cannot be written, is the
    user's mistake, said in one line, not a traceback after the work is done."""
    if out is None:
        return None
    if out.exists() and not out.is_dir():
        raise _fail(f"error [output.not_a_folder] {option} {out} is a file; give a folder.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(
            f"error [output.unwritable] cannot create the folder {option} {out}: "
            f"{exc.strerror or exc}."
        ) from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise _fail(f"error [output.unwritable] cannot write in the folder {option} {out}.")
    return out


def _safe_name(text: str) -> str:
    """``text`` as a file or folder name: letters (of any script: 破损, not ``_``), digits,
    marks, ``.``, ``_`` and ``-`` kept, every other run (spaces, slashes, controls, invisible and
    bidi characters) one ``_``, at most 80 bytes of UTF-8. A merchant's ``张三 001`` and ``李四 001``
    were both ``_001`` (a walkthrough)."""
    kept = (
        c if c in "._-" or unicodedata.category(c)[0] in "LNM" else "\x00"
        for c in unicodedata.normalize("NFC", text)
    )  # letters, digits and marks (ไก่, हिन्दी keep their vowel signs)
    name = re.sub("\x00+", "_", "".join(kept))
    # 80 bytes, not characters: 78 Chinese characters and a picture's suffix passed the file
    # system's 255 bytes (a review).
    return name.encode("utf-8")[:80].decode("utf-8", "ignore")


def _stem(path: str, used: set[str]) -> str:
    stem = _safe_name(Path(path).stem) or "image"
    candidate, n = stem, 1
    while candidate.casefold() in used:  # IMG.jpg and img.jpg are one file on some disks
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate.casefold())
    return candidate


def _stems(images: Sequence[Any]) -> list[str]:
    """The file stem of each image's pictures under ``--out``, in the images' order."""
    used: set[str] = set()
    return [_stem(image.media.name, used) for image in images]


def _write_outputs(assessment: Assessment, out: Path | None) -> dict[str, Any]:
    """The assessment as the report's dict; with ``out``, its pictures and report.json written
    there. A folder that cannot be written raises ``output.unwritable`` (a RefundlensError), so
    that one line of a batch fails alone."""
    regions: dict[tuple[int, int], str] = {}
    pictures: dict[tuple[int, int], dict[str, str]] = {}
    try:
        if out is not None:
            for i, (image, stem) in enumerate(
                zip(assessment.images, _stems(assessment.images), strict=True)
            ):
                for j, path in write_pictures(image, out, stem).items():
                    regions[(i, j)] = path
                for j, named in write_finding_pictures(image, out, stem).items():
                    pictures[(i, j)] = named
        result = assessment_to_dict(assessment, regions, pictures)
        # Who made it and when: a merchant keeping report.json for an appeal had neither (a
        # walkthrough). The files are named by their sha256 above.
        result["made_by"] = {
            "program": "refundlens",
            "version": __version__,
            "analysed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if out is not None:
            from .report.check_report import shareable

            given = [i.media.name for i in assessment.images] + [
                r.name for r in assessment.references
            ]
            write_file(
                out / "report.json",
                (json.dumps(shareable(result, given), ensure_ascii=False, indent=2) + "\n").encode(
                    "utf-8"
                ),
            )
    except OSError as exc:
        raise RefundlensError(
            "output.unwritable",
            f"Cannot write the report to {out}: {exc.strerror or exc}.",
        ) from exc
    return result


def _write_check_report(
    result: dict[str, Any],
    assessment: Assessment,
    boxes: Sequence[Any],
    order: OrderFacts,
    out: Path,
    lang: str,
    pdf: bool,
    settings: Settings,
) -> None:
    """``out``/report.html (and report.pdf with ``pdf``): the check as one file a merchant can
    read, print and send with an appeal. report.json was for programs: a merchant walking
    through the command line could hand a platform or the police only a folder of JSON and PNGs."""
    from .report.check_report import CheckedFile, render_check_html
    from .report.evidence import render_pdf

    claims = [image.media for image in assessment.images]
    files = [
        CheckedFile("claim", m.name, m.sha256, m.data, tuple(box) if box else None)
        for m, box in zip(claims, boxes, strict=True)
    ] + [CheckedFile("reference", m.name, m.sha256, m.data) for m in assessment.references]
    times = {
        name: moment.isoformat()
        for name, moment in (
            ("shipped_at", order.shipped_at),
            ("delivered_at", order.delivered_at),
            ("claimed_at", order.claimed_at),
        )
        if moment is not None
    }
    html = render_check_html(
        result,
        files,
        out,
        _stems(assessment.images),
        "zh_CN" if lang == "zh" else "en",
        times,
        settings,
    )
    try:
        write_file(out / "report.html", html.encode("utf-8"))
    except OSError as exc:
        raise RefundlensError(
            "output.unwritable", f"Cannot write the report to {out}: {exc.strerror or exc}."
        ) from exc
    if pdf:
        data = render_pdf(html, settings.chromium_path)
        try:
            write_file(out / "report.pdf", data)
        except OSError as exc:
            raise RefundlensError(
                "output.unwritable", f"Cannot write the report to {out}: {exc.strerror or exc}."
            ) from exc


_ACTION_ZH = {
    "approve": "批准",
    "request_capture": "要求现场拍摄",
    "review": "人工审核",
    "escalate": "升级处理",
}


def _print_human(assessment: Assessment, lang: str, console: Console) -> None:
    from .rendering.i18n import risk_fraction

    zh = lang == "zh"

    def said(action: str) -> str:
        return _ACTION_ZH.get(action, action) if zh else action

    table = Table(
        title=f"refundlens {__version__}: "
        + (
            f"理赔风险 {risk_fraction(assessment.risk)} → {said(assessment.action)}"
            if zh
            else f"claim risk {risk_fraction(assessment.risk)} -> {assessment.action}"
        )
    )
    table.add_column("图片" if zh else "image")
    table.add_column("风险" if zh else "risk", justify="right")
    table.add_column("处置" if zh else "action")
    # fold: a Chinese sentence has no space to wrap at, and was cut off with "…" (a walkthrough).
    table.add_column("主要理由" if zh else "top reasons", overflow="fold")
    for image in assessment.images:
        reasons = [
            escape(f"[{f.code}] {getattr(f.reason, lang)}") for f, _ in image.verdict.reasons[:3]
        ] or [
            "no finding (no reference given: only reference-free checks ran)"
            if lang == "en"
            else "无发现（未提供参考图：只运行了无需参考图的检测）"
        ]
        table.add_row(
            Path(image.media.name).name,
            risk_fraction(image.risk),
            said(image.action),
            "\n".join(reasons),
        )
    console.print(table)
    skipped = [(Path(i.media.name).name, d, why) for i in assessment.images for d, why in i.skipped]
    if skipped:
        # What was not checked, and why (a walkthrough's report said nothing of pixel forensics
        # skipped once the claim was escalated).
        from .rendering.i18n import translations

        words = translations("zh_CN" if zh else "en")
        console.print(
            ("未运行的检查：" if zh else "Not run: ")
            + ("；" if zh else "; ").join(
                f"{name} {words.pgettext('detector', d)}"
                + (f"（{words.pgettext('skip reason', why)}）" if zh else f" ({why})")
                for name, d, why in skipped
            ),
            markup=False,
        )
    shown = (f.code for image in assessment.images for f in image.findings)
    if assessment.action == "approve" and "reference.no_match" in shown:
        # A walkthrough read "approve" on a photo of something else: the analysis has no reason
        # to doubt it, the service's rule asks for a live photo (docs/service.md, Lifecycle).
        console.print(
            "注：有照片与商家的参考图均不匹配。作为理赔提交时，服务会先请买家现场拍摄"
            "（capture_when_product_not_shown）。"
            if zh
            else "Note: a photo matches none of the shop's references. Filed as a claim, the service "
            "asks the buyer for a live capture first (capture_when_product_not_shown)."
        )


def _load_all(paths: Sequence[Path], settings: Settings, role: str) -> list[Media]:
    loaded = []
    for index, path in enumerate(paths):
        try:
            media = load_media(path, settings)
            if role in ("claim", "claims"):
                # As the service refuses it (a 150 px photo was approved here and refused there).
                refuse_too_small(media, settings)
            loaded.append(media)
        except RefundlensError as exc:  # a refused file still says what its metadata reads
            # and which file it was: a claim photo or a reference (--ref), by its path.
            raise describe_refusal(exc, settings).about_file(index, str(path), role) from None
    return loaded


def _in_chinese(code: str, lang: str) -> str:
    """' （中文一句）' after an error's English sentence where the reader reads Chinese and the
    code has a sentence of its own (the pages' refusals); the line stays one line, the code
    and English sentence first, for scripts."""
    from .rendering.i18n import translations
    from .service.web.refusals import SENTENCES

    if lang != "zh" or code not in SENTENCES:
        return ""
    return f" （{translations('zh_CN').gettext(SENTENCES[code])}）"


def _refusal_note(exc: RefundlensError) -> str:
    """' (its metadata: ...)' for an error whose file's metadata named a generator or a label."""
    found = exc.facts.get("provenance")
    if not isinstance(found, list) or not found:
        return ""
    said = [
        f"{f['code']} {f['facts'].get('generator') or f['facts'].get('producer_service') or ''}".strip()
        for f in found
        if isinstance(f, dict)
    ]
    return f" (its metadata: {'; '.join(said)})"


def _moment(value: str | None, flag: str, settings: Settings) -> datetime | None:
    """An ISO 8601 time from the command line or a manifest; naive times get the default offset."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise RefundlensError(
            "usage.bad_time",
            f"{flag} must be an ISO 8601 time such as 2025-09-12T15:00+08:00, not {value!r}.",
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=utc_offset(settings.capture_default_utc_offset) or UTC)
    return moment


def _order(
    shipped: str | None, delivered: str | None, claimed: str | None, settings: Settings
) -> OrderFacts:
    facts = OrderFacts(
        shipped_at=_moment(shipped, "shipped_at", settings),
        delivered_at=_moment(delivered, "delivered_at", settings),
        claimed_at=_moment(claimed, "claimed_at", settings),
    )
    # As the API refuses such an order: the delivery time decides whether a photo was taken
    # before the goods arrived, and a time in the future made every photo "before shipment".
    check_order_times(facts.shipped_at, facts.delivered_at, settings)
    earliest = datetime(settings.order_time_earliest_year, 1, 1, tzinfo=UTC)
    for name, moment in (
        ("shipped_at", facts.shipped_at),
        ("delivered_at", facts.delivered_at),
        ("claimed_at", facts.claimed_at),
    ):
        if moment is not None and moment < earliest:  # as the API refuses such an order
            raise RefundlensError(
                "order.time_too_early",
                f"{name} ({moment.isoformat()}) is before {settings.order_time_earliest_year} "
                "(order_time_earliest_year).",
            )
    return facts


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise _fail(f"error [settings.invalid] {exc}") from exc


def _database_problem(error: Exception, secrets: tuple[str, ...] = ()) -> str:
    """One line of what went wrong reaching the database: the driver's own words (the role that
    does not exist, the host that refused), not the 400 lines of traceback around them, and
    never a password from the URL (a driver may quote the part of it it misread)."""
    words = " ".join(str(getattr(error, "orig", None) or error).split())
    words = words.split("[SQL:")[0].split("(Background on this error")[0].strip()
    for secret in secrets:
        if secret:
            words = words.replace(secret, "***")
    return words[:400]


def _database_place(url: Any) -> str:
    """Where the database is, for a message: no password, in the user part or the query."""
    hidden = {k: "***" for k in url.query if "password" in k.lower()}
    return str(url.update_query_dict(hidden).render_as_string(hide_password=True))


def _open_database(settings: Settings, *, create: bool) -> Database:
    """The service's database, reachable and at the schema this code needs; said in one line
    where it is not. ``create`` (``serve``, ``db upgrade``) makes or migrates it. Otherwise a
    database with no schema is refused (a command run with the wrong REFUNDLENS_DATA_DIR or
    REFUNDLENS_DATABASE_URL must say so, not quietly start an empty service of its own), and so
    is a database server behind this release: its schema changes once, by `refundlens db
    upgrade`, before the new servers and workers start. A SQLite file (one machine) is brought
    up to date."""
    from alembic.util.exc import CommandError
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from .store import Database
    from .store.sql.db import database_url, sqlite_path

    # Not database_url() for the embedded default: it makes the data folder, and a command run
    # in the wrong place must leave none behind.
    url_text = (
        database_url(settings) if settings.database_url else f"sqlite:///{sqlite_path(settings)}"
    )
    try:
        url = make_url(url_text)
    except Exception:
        raise _fail(
            "error [database.bad_url] REFUNDLENS_DATABASE_URL cannot be read as a database URL "
            "(a server is named postgresql+psycopg://USER:PASSWORD@HOST/DATABASE)"
        ) from None
    secrets = tuple(str(v) for k, v in url.query.items() if "password" in k.lower()) + (
        (url.password or "",) if url.password else ()
    )
    if url.host and "@" in url.host:
        raise _fail(
            "error [database.bad_url] REFUNDLENS_DATABASE_URL has an '@' after the password's "
            "start: percent-encode the password (@ is %40)"
        )
    where = _database_place(url)
    embedded = url.get_backend_name() == "sqlite"
    if embedded and not create:
        path = Path(url.database or "")
        if not url.database or not path.exists():
            raise _fail(
                f"error [database.missing] no refundlens database at {path}: run this where the server runs, or set "
                "REFUNDLENS_DATA_DIR (or REFUNDLENS_DATABASE_URL) to the server's; "
                "`refundlens serve` or `refundlens db upgrade` creates a new one"
            )
    try:
        database = Database(settings)
    except (SQLAlchemyError, ValueError, ImportError) as error:
        raise _fail(
            f"error [database.bad_url] REFUNDLENS_DATABASE_URL: {_database_problem(error, secrets)} "
            "(a server is named postgresql+psycopg://USER:PASSWORD@HOST/DATABASE)"
        ) from None
    try:
        current, head = database.revisions()
        known = current is None or _known_revision(current)
        if not known:
            database.dispose()
            raise _fail(
                f"error [database.ahead] the database at {where} is at schema {current}, newer "
                f"than this refundlens ({head}): run the release that upgraded it"
            )
        if create:
            database.upgrade()
            return database
    except (SQLAlchemyError, CommandError, ValueError) as error:
        database.dispose()
        raise _fail(
            f"error [database.unreachable] cannot use the database at {where}: "
            f"{_database_problem(error, secrets)}"
        ) from None
    if current is None:
        database.dispose()
        raise _fail(
            f"error [database.missing] no refundlens database at {where} (no schema): set REFUNDLENS_DATABASE_URL to the "
            "server's; `refundlens db upgrade` creates a new one"
        )
    if current != head:
        if not embedded:
            database.dispose()
            raise _fail(
                f"error [database.behind] the database at {where} is at schema {current}, this "
                f"refundlens needs {head}: run `refundlens db upgrade` once, before the new "
                "servers and workers start"
            )
        database.upgrade()
    return database


def _known_revision(revision: str) -> bool:
    """Whether this release's migrations know ``revision`` (a newer release's does not)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from .store.sql.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        return ScriptDirectory.from_config(config).get_revision(revision) is not None
    except Exception:
        return False


def _existing_database(settings: Settings) -> Database:
    """The service's database, at the current schema; never a new one (:func:`_open_database`)."""
    return _open_database(settings, create=False)


@app.command()
def check(
    claims: Annotated[
        list[Path] | None, typer.Argument(help="Claim photos (JPEG, PNG, WebP, HEIC).")
    ] = None,
    ref: Annotated[
        list[Path] | None, typer.Option("--ref", help="A merchant reference photo (repeatable).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the versioned JSON result.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write report.json, masks and overlays here.")
    ] = None,
    lang: Annotated[str, typer.Option("--lang", help="zh or en for the human output.")] = "zh",
    batch: Annotated[
        Path | None, typer.Option("--batch", help="JSONL manifest: one claim per line.")
    ] = None,
    shipped_at: Annotated[
        str | None, typer.Option("--shipped-at", help="When the goods shipped (ISO 8601).")
    ] = None,
    delivered_at: Annotated[
        str | None, typer.Option("--delivered-at", help="When they were delivered (ISO 8601).")
    ] = None,
    claimed_at: Annotated[
        str | None, typer.Option("--claimed-at", help="When the claim was filed (ISO 8601).")
    ] = None,
    damage_boxes: Annotated[
        str,
        typer.Option(
            "--damage-boxes",
            help="The buyer's box around the damage on each claim photo, as the API takes it: "
            "a JSON array, one entry per photo, null or [left, top, right, bottom] fractions.",
        ),
    ] = "",
    pdf: Annotated[
        bool,
        typer.Option(
            "--pdf",
            help="With --out: also write report.pdf (needs Chromium: make system-deps).",
        ),
    ] = False,
) -> None:
    """Check claim photos, optionally against the merchant's reference photos."""
    lang = _language(lang)
    if pdf and out is None:
        raise _fail(
            "error [usage] --pdf writes report.pdf into the --out folder: give --out."
            + _in_chinese("usage", lang)
        )
    settings = _settings()
    policy = _checked_policy(settings)
    out = _output_folder(out)
    if batch is not None:
        if claims:
            raise _fail(
                "error [usage] give claim paths or --batch, not both." + _in_chinese("usage", lang)
            )
        _run_batch(batch, out, settings, policy, lang, pdf)
        return
    if not claims:
        raise _fail(
            "error [usage] give at least one claim photo (or --batch MANIFEST)."
            + _in_chinese("usage", lang)
        )
    try:
        order = _order(shipped_at, delivered_at, claimed_at, settings)
        boxes = parse_damage_boxes(damage_boxes, len(claims), settings)
        references = _load_all(ref or [], settings, "--ref")
        claim_media = _load_all(claims, settings, "claim")
    except RefundlensError as exc:
        said = f"error [{exc.code}] {exc.message}{_refusal_note(exc)}"
        raise _fail(said + _in_chinese(exc.code, lang)) from exc
    marks = {m.sha256: box for m, box in zip(claim_media, boxes, strict=True) if box}
    assessment = analyze(
        claim_media, references, settings=settings, policy=policy, order=order, damage_marks=marks
    )
    try:
        result = _write_outputs(assessment, out)
        if out is not None:
            _write_check_report(result, assessment, boxes, order, out, lang, pdf, settings)
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    if as_json:
        sys.stdout.write(_json_line(result))
    else:
        _print_human(assessment, lang, Console())
        if out is not None:
            readable = "report.pdf" if pdf else "report.html"
            Console().print(
                f"报告已写入 {out}（{readable}：可阅读、打印或随申诉提交；report.json：数据）"
                if lang == "zh"
                else f"report written to {out} ({readable} to read, print or send with an "
                "appeal; report.json: the data)",
                markup=False,
            )


# --- batch --------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(settings: Settings, policy: Policy, lang: str = "zh", pdf: bool = False) -> None:
    from .threads import one_thread_per_process

    one_thread_per_process()  # one process per core already; threads would fight over them
    _WORKER["settings"] = settings
    _WORKER["policy"] = policy
    _WORKER["lang"] = lang
    _WORKER["pdf"] = pdf


def _batch_folder(line: str, number: int) -> str:
    """The folder a manifest line's pictures go to under ``--out``: its id, made a safe name
    (``line-N`` where it has none or is not JSON: the line itself reports that)."""
    try:
        entry = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        entry = None
    ident = str(entry.get("id") or "") if isinstance(entry, dict) else ""
    folder = _safe_name(ident or f"line-{number}")
    # "." and ".." name --out itself and its parent, and index.html is the page listing the
    # claims: never a claim's folder.
    reserved = not folder.strip(".") or folder.casefold() == "index.html"
    return f"id-{folder}" if reserved else folder


def _batch_line(args: tuple[int, str, str | None, str, int]) -> dict[str, Any]:
    number, line, out, base, clash = args
    settings: Settings = _WORKER["settings"]
    if clash:
        # Two lines writing one folder would leave one's pictures beside the other's report.
        folder = _batch_folder(line, number)
        try:
            named = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            named = None
        return {
            "id": str(named.get("id") or folder) if isinstance(named, dict) else folder,
            "error": {
                "code": "batch.duplicate_id",
                "message": f"Line {number} would write folder {folder!r} under --out, which "
                f"line {clash} writes; give each line an id of its own.",
            },
        }
    try:
        entry = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        return {
            "id": f"line-{number}",
            "error": {
                "code": "batch.bad_line",
                "message": f"Line {number} is not JSON: {getattr(exc, 'msg', 'nested too deep')}.",
            },
        }
    if not isinstance(entry, dict):
        return {
            "id": f"line-{number}",
            "error": {"code": "batch.bad_line", "message": f"Line {number} is not a JSON object."},
        }
    ident = str(entry.get("id") or f"line-{number}")
    if out and (Path(out) / _batch_folder(line, number)).is_symlink():
        # A folder --out holds as a link (a buyer's unzipped folder keeps links) would take the
        # line's report wherever it points (a security review).
        return {
            "id": ident,
            "error": {
                "code": "output.unwritable",
                "message": f"{Path(out) / _batch_folder(line, number)} is a link: the line's "
                "report is not written through it.",
            },
        }
    claims, refs = entry.get("claims"), entry.get("refs", [])
    if not isinstance(claims, list) or not claims or not isinstance(refs, list):
        return {
            "id": ident,
            "error": {
                "code": "batch.missing_field",
                "message": "Each line needs 'claims' (a non-empty list) and optionally 'refs' (a list).",
            },
        }
    for field, files, limit, code in (
        ("claims", claims, settings.max_photos_per_claim, "claim.too_many_photos"),
        ("refs", refs, settings.max_references_per_sku, "sku.too_many_references"),
    ):
        if len(files) > limit:
            # As the service bounds a claim and a SKU: a line of 30 references held 8 MB each
            # (a security review).
            return {
                "id": ident,
                "error": {
                    "code": code,
                    "message": f"'{field}' names {len(files)} files; at most {limit} are taken.",
                },
            }
    try:
        order = _order(
            entry.get("shipped_at"), entry.get("delivered_at"), entry.get("claimed_at"), settings
        )
        raw_boxes = entry.get("damage_boxes")
        boxes = parse_damage_boxes(
            "" if raw_boxes is None else json.dumps(raw_boxes), len(claims), settings
        )
        # Relative paths are the manifest's: it travels with its photos, wherever it is run from.
        references = _load_all([Path(base) / str(p) for p in refs], settings, "refs")
        claim_media = _load_all([Path(base) / str(p) for p in claims], settings, "claims")
        assessment = analyze(
            claim_media,
            references,
            settings=settings,
            policy=_WORKER["policy"],
            order=order,
            damage_marks={m.sha256: b for m, b in zip(claim_media, boxes, strict=True) if b},
        )
        folder = _batch_folder(line, number)
        result = _write_outputs(assessment, Path(out) / folder if out else None)
        if out:
            _write_check_report(
                result,
                assessment,
                boxes,
                order,
                Path(out) / folder,
                _WORKER["lang"],
                _WORKER["pdf"],
                settings,
            )
    except RefundlensError as exc:
        return {"id": ident, "error": exc.as_dict()}
    except Exception as exc:  # one line's fault never stops the batch
        # A fault of ours, not of the line's (a 310-digit box once stopped every later line: a
        # security review). Said on the line, in full on stderr.
        log.exception("batch line %d (%s) failed", number, ident)
        return {
            "id": ident,
            "error": {
                "code": "batch.line_failed",
                "message": f"Line {number} could not be analysed ({type(exc).__name__}); the "
                "other lines go on. Please report it with the line.",
            },
        }
    return {"id": ident, **result}


def _run_batch(
    manifest: Path,
    out: Path | None,
    settings: Settings,
    policy: Policy,
    lang: str = "zh",
    pdf: bool = False,
) -> None:
    try:
        handle = manifest.open(encoding="utf-8")
    except OSError as exc:
        raise _fail(
            f"error [batch.unreadable] cannot read {manifest}: {exc.strerror or exc}."
        ) from exc
    folders: list[str] = []  # each line's folder under --out, in the order results come
    rows: list[Any] = []

    def answered(result: dict[str, Any]) -> None:
        sys.stdout.write(_json_line(result))
        sys.stdout.flush()
        folder = folders.pop(0)
        if out is not None:
            rows.append(_index_row(result, folder))

    with handle:

        def jobs() -> Iterator[tuple[int, str, str | None, str, int]]:
            base = str(manifest.parent)
            first: dict[str, int] = {}
            for number, line in enumerate(handle, 1):
                if line.strip():
                    # Case-folded: on a case-insensitive disk C1 and c1 are one folder.
                    folder = _batch_folder(line, number)
                    clash = first.setdefault(folder.casefold(), number) if out else 0
                    folders.append(folder)
                    yield (
                        number,
                        line,
                        str(out) if out else None,
                        base,
                        0 if clash == number else clash,
                    )

        workers = settings.workers or os.cpu_count() or 1
        if workers == 1:
            _init_worker(settings, policy, lang, pdf)
            for result in map(_batch_line, jobs()):
                answered(result)
        else:
            with multiprocessing.get_context("spawn").Pool(
                workers, _init_worker, (settings, policy, lang, pdf)
            ) as pool:
                for result in pool.imap(_batch_line, jobs(), chunksize=1):
                    answered(result)
    if out is not None:
        _write_index(out, rows, lang, settings)


def _index_row(result: dict[str, Any], folder: str | None) -> Any:
    """A line of index.html: the claim's suggestion, or why it was not checked."""
    from .report.check_report import IndexRow

    if "error" in result:
        code = str(result["error"].get("code", ""))
        # As the terminal says it (the index said it in English alone: a walkthrough).
        zh = _in_chinese(code, "zh").strip().removeprefix("（").removesuffix("）")
        return IndexRow(str(result.get("id", "")), error=dict(result["error"]), error_zh=zh)
    claim = result.get("claim") or {}
    return IndexRow(
        str(result.get("id", "")),
        folder,
        str(claim.get("action", "")),
        float(claim.get("risk", 0.0)),
    )


def _write_index(out: Path, rows: list[Any], lang: str, settings: Settings) -> None:
    """``out``/index.html: a page to start from, one line per claim checked into ``out``."""
    from .report.check_report import render_check_index

    try:
        write_file(
            out / "index.html",
            render_check_index(rows, "zh_CN" if lang == "zh" else "en", settings).encode("utf-8"),
        )
    except OSError as exc:
        raise _fail(f"error [output.unwritable] cannot write {out / 'index.html'}: {exc}") from exc


# --- demo ---------------------------------------------------------------------------------


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the demo report.")] = Path(
        "demo-report"
    ),
    lang: Annotated[str, typer.Option("--lang", help="zh or en.")] = "zh",
) -> None:
    """Analyse the bundled sample claims against the bundled listing photo and write a report."""
    lang = _language(lang)
    settings = _settings()
    samples = resources.files("refundlens").joinpath("samples")
    with resources.as_file(samples) as folder:
        listing = load_media(folder / "listing.jpg", settings)
        console = Console()
        rows = []
        for name in (
            "claim_forged.jpg",
            "claim_screen.jpg",
            "claim_genuine.jpg",
            "claim_unrelated.jpg",
        ):
            claim = load_media(folder / name, settings)
            assessment = analyze([claim], [listing], settings=settings)
            folder_out = out / Path(name).stem
            result = _write_outputs(assessment, folder_out)
            _write_check_report(
                result, assessment, [None], OrderFacts(), folder_out, lang, False, settings
            )
            rows.append(_index_row({"id": Path(name).stem, **result}, Path(name).stem))
            _print_human(assessment, lang, console)
    _write_index(out, rows, lang, settings)
    if lang == "en":
        console.print(
            f"demo report written to {out}/: open {out}/index.html in a browser; a folder per "
            "claim holds its report.html, report.json and the pictures of what was found"
        )
    else:
        console.print(
            f"演示报告已写入 {out}/：用浏览器打开 {out}/index.html；每笔理赔一个文件夹，内含 "
            "report.html、report.json 和检测结果的图片"
        )


@app.command()
def explain(
    file: Annotated[Path, typer.Argument(help="One image file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Print every fact read from one file: EXIF, XMP, PNG text, AIGC label, JPEG tables, PDQ."""
    from .report.explain import explain_facts

    settings = _settings()
    try:
        media = load_media(file, settings)
    except AnimatedMediaError as exc:
        if exc.still is None:
            raise _fail(f"error [{exc.code}] {exc.message}") from exc
        # Refused as a claim, yet its metadata is a fact a reviewer may want: explain it.
        sys.stderr.write(f"refundlens: refused as a claim [{exc.code}] {exc.message}\n")
        media = exc.still
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    facts = explain_facts(media, settings)
    if as_json:
        sys.stdout.write(_json_line(facts))
        return
    console = Console()
    for section, value in facts.items():
        if not value:
            continue
        table = Table(title=section, show_header=False, title_justify="left")
        table.add_column("field", style="bold")
        table.add_column("value")
        if isinstance(value, dict):
            rows: Any = value.items()
        elif isinstance(value, list):
            rows = enumerate(value, 1)
        else:
            rows = [(section, value)]
        for key, item in rows:
            table.add_row(
                escape(str(key)),
                escape(json.dumps(item, ensure_ascii=False) if not isinstance(item, str) else item),
            )
        console.print(table)


db_app = typer.Typer(help="The claims database.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of the claims service.", no_args_is_help=True)
tenants_app = typer.Typer(
    help="Tenants (merchants, platforms) of the claims service.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")
backup_app = typer.Typer(
    help="Back up and restore the database and the blob store (docs/operations.md).",
    no_args_is_help=True,
)
app.add_typer(backup_app, name="backup")
bank_app = typer.Typer(
    help="The bank of confirmed forgeries, shared between platforms as signed files.",
    no_args_is_help=True,
)
app.add_typer(bank_app, name="bank")


@bank_app.command("keygen")
def bank_keygen(
    out: Annotated[Path, typer.Option(help="Where to write the Ed25519 private key (PEM).")],
) -> None:
    """Create this platform's bank signing key; prints the line other platforms add to their trusted signers."""
    from .reuse.bank import generate_key

    try:
        public = generate_key(out)
    except FileExistsError:
        raise _fail(f"error [usage] {out} exists; refusing to overwrite a signing key") from None
    typer.echo(f"{_settings().bank_name} {public}")


@bank_app.command("export")
def bank_export(out: Annotated[Path, typer.Option(help="The signed bank file to write.")]) -> None:
    """Export this platform's confirmed forgeries (hashes, codes, dates, keyed buyer ids), signed."""
    import json as _json

    from sqlalchemy import select

    from .errors import RefundlensError
    from .reuse.bank import load_private, sign_bank
    from .store.sql.models import BankEntry

    settings = _settings()
    if not settings.bank_signing_key_path:
        raise _fail(
            "error [settings.bank_signing_key_required] set REFUNDLENS_BANK_SIGNING_KEY_PATH "
            "(refundlens bank keygen makes one)"
        )
    try:
        key = load_private(settings.bank_signing_key_path)
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    database = _existing_database(settings)
    with database.session() as session:
        rows = (
            session.execute(
                select(BankEntry).where(BankEntry.claim_id.is_not(None)).order_by(BankEntry.id)
            )
            .scalars()
            .all()
        )
        # Buyer ids leave only as HMAC under the key the platforms agree on, computed now.
        from .reuse.bank import buyer_hmac
        from .store import BlobStore
        from .store.sql.models import Claim

        blobs = BlobStore(f"{settings.data_dir}/blobs")

        entries = []
        for r in rows:
            owner = session.get(Claim, r.claim_id) if r.claim_id else None
            keyed = (
                buyer_hmac(settings.bank_buyer_hmac_key, owner.buyer_id) if owner else r.buyer_hmac
            )
            entry: dict[str, Any] = {
                "pdq": r.pdq,
                "codes": list(r.codes),
                "confirmed_at": r.confirmed_at.date().isoformat(),
                "buyer": keyed,
            }
            local = _local_print_of(session, blobs, r.claim_id, r.pdq) if r.claim_id else None
            if local is not None:
                entry["local"] = local  # keypoint descriptors: a cropped copy still matches
            entries.append(entry)
    document = sign_bank(settings.bank_name, settings.bank_name, entries, key)
    out.write_text(_json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    typer.echo(f"{len(entries)} entries of bank {settings.bank_name!r} signed and written to {out}")


def _local_print_of(session: Any, blobs: Any, claim_id: str, pdq: str) -> str | None:
    """The local print (``reuse.prints``) of the claim photo whose whole-image PDQ is ``pdq``, or
    None where the photo is no longer kept, or for the entries of its centre crops (the print
    already matches crops): computed at export, so that only descriptors leave."""
    from sqlalchemy import select

    from .errors import RefundlensError
    from .media import media_from_bytes
    from .reuse.prints import local_print
    from .store.sql.models import ClaimFingerprint

    row = session.execute(
        select(ClaimFingerprint).where(
            ClaimFingerprint.claim_id == claim_id,
            ClaimFingerprint.pdq == pdq,
            ClaimFingerprint.variant == "full",
        )
    ).scalar()
    if row is None:
        return None
    if row.local_print:  # kept when the photo was filed (migration 0020)
        return str(row.local_print)
    try:
        media = media_from_bytes(blobs.get(row.photo_sha256), "bank.jpg")
    except (RefundlensError, OSError, KeyError):
        return None
    found = local_print(media.analysis)
    return found.to_text() if len(found) else None


@bank_app.command("import")
def bank_import(
    file: Annotated[Path, typer.Argument(help="A bank file from another platform.")],
) -> None:
    """Verify a bank file against the trusted signers and add its entries; refuse anything else."""
    import datetime as _dt
    import json as _json

    from sqlalchemy import select

    from .errors import RefundlensError
    from .reuse.bank import MAX_FILE_BYTES, read_trusted, verify_bank
    from .store.sql import audit as _audit
    from .store.sql.models import BankEntry, utcnow

    settings = _settings()
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise _fail(f"error [bank.malformed] {file} is over {MAX_FILE_BYTES} bytes.")
        document = verify_bank(
            _json.loads(file.read_text(encoding="utf-8")),
            read_trusted(settings.bank_trusted_keys_path),
            own_bank=settings.bank_name,
        )
    except (OSError, ValueError) as exc:
        raise _fail(f"error [bank.unreadable] cannot read {file}: {exc}") from exc
    except RecursionError:  # JSON nested deeper than any bank file is
        raise _fail(
            f"error [bank.malformed] {file} is nested too deeply to be a bank file."
        ) from None
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    database = _existing_database(settings)
    added = printed = 0
    with database.session() as session:
        for entry in document["entries"]:
            # verify_bank read every print: a file with one it cannot read was refused whole.
            local = entry.get("local")
            exists = session.execute(
                select(BankEntry).where(
                    BankEntry.bank == document["bank"],
                    BankEntry.pdq == entry["pdq"],
                    BankEntry.buyer_hmac == entry.get("buyer"),
                )
            ).scalar()
            imported_at = None
            if exists is not None:
                if not local or exists.local_print:
                    continue
                # Held without a print (a format-1 file, or imported before prints were kept):
                # added again under a new id, which the services' index caches read (by id).
                imported_at = exists.imported_at
                session.delete(exists)
                session.flush()
            confirmed = _dt.datetime.fromisoformat(
                str(entry.get("confirmed_at", "1970-01-01"))
            ).replace(tzinfo=_dt.UTC)
            session.add(
                BankEntry(
                    bank=document["bank"],
                    signer=document["signer"],
                    pdq=entry["pdq"],
                    codes=list(entry.get("codes", [])),
                    confirmed_at=confirmed,
                    buyer_hmac=entry.get("buyer"),
                    local_print=str(local) if local else None,
                    imported_at=imported_at or utcnow(),
                )
            )
            added += exists is None
            printed += bool(local)
        _audit.append(
            session,
            "cli",
            "bank.imported",
            details={
                "bank": document["bank"],
                "signer": document["signer"],
                "entries": len(document["entries"]),
                "added": added,
                "local_prints": printed,
            },
        )
    typer.echo(
        f"bank {document['bank']!r} signed by {document['signer']!r}: {added} new of {len(document['entries'])} entries, {printed} local prints stored"
    )


@bank_app.command("list")
def bank_list() -> None:
    """Banks held here, with their entry counts."""
    from sqlalchemy import func, select

    from .store.sql.models import BankEntry

    database = _existing_database(_settings())
    with database.session() as session:
        rows = session.execute(
            select(
                BankEntry.bank,
                BankEntry.signer,
                func.count(),
                func.count(BankEntry.local_print),
                func.max(BankEntry.confirmed_at),
            ).group_by(BankEntry.bank, BankEntry.signer)
        ).all()
    for bank, signer, count, printed, last in rows:
        typer.echo(
            f"{bank}\tsigned by {signer}\t{count} entries\t{printed} with local prints"
            f"\tlast confirmed {str(last)[:10]}"
        )
    if not rows:
        typer.echo("no bank entries")


webhooks_app = typer.Typer(help="Events sent to the platform's endpoints.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("retry")
def webhooks_retry(
    tenant: Annotated[
        str | None, typer.Option(help="Only the events of this tenant's endpoint.")
    ] = None,
) -> None:
    """Send failed webhook events again (an endpoint was down longer than their retries lasted):
    each is pending again, its attempts from zero, its event id unchanged."""
    from .store.sql.models import Tenant
    from .workers.webhooks import retry_failed

    database = _existing_database(_settings())
    if tenant is not None:
        with database.session() as session:
            if session.get(Tenant, tenant) is None:
                # "0 pending again" for a mistyped tenant reads as "nothing failed there".
                raise _fail(
                    f"error [tenant.not_found] no tenant {tenant} in this database: nothing was "
                    "sent again"
                )
    count = retry_failed(database, tenant)
    typer.echo(f"{count} failed webhook event(s) pending again")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database (SQLite in data_dir, or REFUNDLENS_DATABASE_URL)."""
    database = _open_database(_settings(), create=True)
    typer.echo(f"database at head: {database.engine.url.render_as_string(hide_password=True)}")


@db_app.command("index-captures")
def db_index_captures() -> None:
    """Index for reuse the live captures (photos and a clip's kept frames) accepted before
    captures were indexed (CHANGELOG, 2026-12-05): until then one live photo could serve as the
    capture of many claims. Run once after upgrading; idempotent."""
    from sqlalchemy import select

    from .cases import CLIP_FRAME_EVIDENCE_KIND, add_photo_prints
    from .media import media_from_bytes
    from .store import BlobStore
    from .store.sql.models import Claim, ClaimFingerprint, ClaimPhoto, Evidence
    from .store.sql.repositories import SqlStore

    settings = _settings()
    database = _existing_database(settings)
    blobs = BlobStore(f"{settings.data_dir}/blobs")
    indexed = unreadable = 0
    with database.session() as session:
        done: set[tuple[str, str]] = {
            (claim_id, sha)
            for claim_id, sha in session.execute(
                select(ClaimFingerprint.claim_id, ClaimFingerprint.photo_sha256)
            )
        }
        live = session.execute(
            select(ClaimPhoto.claim_id, ClaimPhoto.sha256, ClaimPhoto.name).where(
                ClaimPhoto.live_capture.is_(True)
            )
        ).all()
        frames = session.execute(
            select(Evidence.claim_id, Evidence.sha256, Evidence.name).where(
                Evidence.kind == CLIP_FRAME_EVIDENCE_KIND
            )
        ).all()
        store = SqlStore(session)
        for claim_id, sha, name in [*live, *frames]:
            if sha is None or (claim_id, sha) in done:
                continue
            try:
                media = media_from_bytes(blobs.get(sha), name, settings)
            except (RefundlensError, OSError) as exc:
                unreadable += 1
                sys.stderr.write(f"refundlens: {claim_id} {sha[:12]}: not indexed ({exc})\n")
                continue
            claim = session.get(Claim, claim_id)
            assert claim is not None
            add_photo_prints(store, claim, media)
            done.add((claim_id, sha))
            indexed += 1
    typer.echo(f"{indexed} live capture picture(s) indexed for reuse")
    if unreadable:
        raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify(
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            help="Checkpoints of the head kept elsewhere ('seq hash time' lines); default: "
            "the audit_checkpoint_path setting."
        ),
    ] = None,
) -> None:
    """Recompute the audit chain and compare it with the checkpoints of its head; exit 1 and
    name the first broken entry if it was altered, rewritten or cut."""
    from .store.sql.audit import configured_checkpoints, read_checkpoints, verify

    settings = _settings()
    database = _existing_database(settings)
    with database.session() as session:
        try:
            points = (
                read_checkpoints(str(checkpoints))
                if checkpoints
                else configured_checkpoints(session, settings.audit_checkpoint_path)
            )
        except RefundlensError as exc:
            # As every other refusal of the CLI: `error [code] sentence` (docs/errors.md).
            sys.stderr.write(f"refundlens: error [{exc.code}] {exc.message}\n")
            raise typer.Exit(2) from None
        checked, problem = verify(session, checkpoints=points)
    if problem is None:
        against = f", {len(points)} checkpoints matched" if points else ", no checkpoints"
        typer.echo(f"audit log intact: {checked} entries, chain verified{against}")
        return
    sys.stderr.write(
        f"refundlens: audit log broken at entry {problem.seq}: {problem.problem} ({checked} entries before it verified)\n"
    )
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Print the audit log's head (seq, hash) to keep where the database's writers cannot reach;
    with audit_checkpoint_path set, also append it there (the scheduler's tick does so too)."""
    from .store.sql.audit import Checkpoint, current_head, record_checkpoint
    from .store.sql.models import utcnow

    settings = _settings()
    database = _existing_database(settings)
    with database.session() as session:
        seq, digest = current_head(session)  # under the same read as what is appended
        try:
            if settings.audit_checkpoint_path:
                record_checkpoint(session, settings.audit_checkpoint_path)
        except (OSError, RefundlensError) as exc:
            sys.stderr.write(f"refundlens: {getattr(exc, 'message', exc)}\n")
            raise typer.Exit(2) from None
    # In the file's own format, ready for `audit verify --checkpoints`.
    typer.echo(Checkpoint(seq, digest, utcnow().isoformat(timespec="seconds")).line(), nl=False)


@backup_app.command("keygen")
def backup_keygen(
    out: Annotated[Path, typer.Option(help="Where to write the Ed25519 private key (PEM).")],
) -> None:
    """Create a key that signs backups' manifests (set backup_signing_key_path to it); prints
    its public key, for backup_trusted_keys on the machines that restore."""
    from .store.crypto import new_signing_key

    try:
        public = new_signing_key(out)
    except FileExistsError:
        raise _fail(f"error [usage] {out} exists; refusing to overwrite a signing key") from None
    except OSError as exc:
        raise _fail(
            f"error [output.unwritable] cannot write {out}: {exc.strerror or exc}."
        ) from exc
    typer.echo(public)


@backup_app.command("create")
def backup_create(
    out: Annotated[Path, typer.Argument(help="A new folder for the backup.")],
) -> None:
    """Back up the database (SQLite's backup API, or pg_dump) and the blobs into OUT. The PII
    key is not in it: keep that apart, in your secret store."""
    from .store.backup import create_backup

    settings = _settings()
    _existing_database(settings).dispose()
    try:
        report = create_backup(settings, out)
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    signed = (
        f"; manifest signed by {report.signed_by}"
        if report.signed_by
        else "; manifest not signed (backup_signing_key_path)"
    )
    typer.echo(
        f"backup of the {report.database} database written to {out}: {report.blobs} blobs, "
        f"{report.audit_entries} audit entries (head {report.audit_head[:12]}){signed}"
    )
    if report.damaged_blobs:
        sys.stderr.write(
            f"refundlens: warning: {len(report.damaged_blobs)} blobs of the service do not match "
            f"their sha256 and were left out (the manifest's damaged_blobs): "
            f"{', '.join(report.damaged_blobs[:5])}\n"
        )


@backup_app.command("restore")
def backup_restore(
    folder: Annotated[Path, typer.Argument(help="A folder written by `backup create`.")],
) -> None:
    """Restore a backup into an empty database and data folder, then verify the audit chain
    and every file the database names; exit 1 if a file is missing."""
    from .store.backup import restore_backup

    try:
        report = restore_backup(_settings(), folder)
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    against = (
        f", {report.checkpoints_matched} checkpoints matched"
        if report.checkpoints_matched
        else ", no checkpoints"
    )
    typer.echo(
        f"restored the {report.database} database and {report.blobs} blobs from {folder}; "
        f"audit log intact: {report.audit_entries} entries, chain verified{against}"
        + (f"; manifest signed by {report.signed_by}" if report.signed_by else "")
    )
    if not report.signed_by:
        sys.stderr.write(
            "refundlens: note: no key is set to check backups' signatures "
            "(backup_trusted_keys): the dump was checked against its manifest only, which "
            "whoever can write where the backup was kept can write again\n"
        )
    if report.checkpoints_after:
        # Not an error (an older backup is restored on purpose), but entries are lost, and the
        # scheduler's next checkpoint will say the head moved back.
        sys.stderr.write(
            f"refundlens: note: {report.checkpoints_after} checkpoint"
            f"{' is' if report.checkpoints_after == 1 else 's are'} of entries after this "
            "backup's last: the audit entries written since the backup are not in it\n"
        )
    if report.missing_blobs:
        sys.stderr.write(
            f"refundlens: {len(report.missing_blobs)} files the database names are missing: "
            f"{', '.join(report.missing_blobs[:5])}\n"
        )
        raise typer.Exit(1)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin | reviewer | merchant | buyer")],
    tenant: Annotated[str | None, typer.Option(help="Tenant id (merchant keys).")] = None,
    subject: Annotated[str | None, typer.Option(help="Buyer id (buyer keys).")] = None,
    assign: Annotated[
        list[str] | None, typer.Option(help="Tenants a reviewer may see (repeat).")
    ] = None,
    label: Annotated[str, typer.Option(help="A note on who holds the key.")] = "",
) -> None:
    """Create an API key and print it once (only its hash is stored). Its tenants must exist
    (POST /v1/tenants, or refundlens tenants add)."""
    from .service.auth import create_key
    from .store.sql.models import Tenant

    database = _existing_database(_settings())
    try:
        with database.session() as session:
            unknown = [t for t in [tenant, *(assign or [])] if t and session.get(Tenant, t) is None]
            if unknown:
                raise _fail(
                    f"error [tenant.not_found] no tenant {', '.join(unknown)} in this database: "
                    "add it first "
                    "(`refundlens tenants add ID`, or POST /v1/tenants as admin)"
                )
            token = create_key(session, role, tenant, subject, label, list(assign or []), by="cli")
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    typer.echo(token)
    if role == "reviewer" and not assign:
        # Made as asked, but it sees no claim until a shop is assigned to it (a new user's
        # walkthrough made one and found an empty queue).
        sys.stderr.write(
            "refundlens: note: this reviewer key is assigned no shop and sees no claim; a key's "
            "shops are given when it is made: revoke it and create one with --assign SHOP "
            "(repeat for each shop)\n"
        )


@keys_app.command("list")
def keys_list() -> None:
    """Every API key: id, role, tenant or buyer, label, created, revoked (never the secret)."""
    from sqlalchemy import select

    from .store.sql.models import ApiKey, ReviewerAssignment

    database = _existing_database(_settings())
    table = Table()
    for column in ("id", "role", "tenants / buyer", "label", "created", "revoked"):
        # Folded, never cut with an ellipsis: an id is copied from here into `keys revoke`.
        table.add_column(column, overflow="fold")
    with database.session() as session:
        assigned: dict[str, list[str]] = {}
        for row in session.execute(select(ReviewerAssignment)).scalars():
            assigned.setdefault(row.key_id, []).append(row.tenant_id)
        for key in session.execute(select(ApiKey).order_by(ApiKey.created_at)).scalars():
            # A reviewer's shops are its assignments; a merchant's its tenant; a buyer's its id.
            scope = ", ".join(sorted(assigned.get(key.id, []))) or key.tenant_id or key.subject
            table.add_row(
                key.id,
                key.role,
                escape(scope or ""),
                escape(key.label),
                key.created_at.isoformat(timespec="seconds"),
                "yes" if key.revoked else "",
            )
    Console(width=max(Console().width, 140)).print(table)


@keys_app.command("rotate-pii")
def keys_rotate_pii() -> None:
    """Seal every buyer's personal data again under the first PII key (pii_key: new key
    first, then the old; docs/operations.md). Afterwards the old key can be dropped."""
    from sqlalchemy import select

    from .store.crypto import PiiCipher
    from .store.sql import audit
    from .store.sql.models import Order

    settings = _settings()
    database = _existing_database(settings)
    cipher = PiiCipher.from_settings(settings)
    try:
        with database.session() as session:
            orders = session.execute(
                select(Order).where(Order.buyer_pii.is_not(None)).with_for_update()
            ).scalars()
            count = 0
            for order in orders:
                assert order.buyer_pii is not None
                order.buyer_pii = cipher.reseal(order.buyer_pii)
                count += 1
            audit.append(session, "cli", "pii.resealed", details={"orders": count})
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    typer.echo(f"personal data of {count} orders sealed under the first PII key")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (rlk_...).")]) -> None:
    """Revoke a key at once: the API refuses it and its web sessions end (on the record)."""
    from .store.sql import audit
    from .store.sql.models import ApiKey

    database = _existing_database(_settings())
    with database.session() as session:
        key = session.get(ApiKey, key_id.split(".")[0])
        if key is None:
            raise _fail(
                f"error [key.not_found] no key {key_id.split('.')[0]} in this database "
                "(`refundlens keys list`)"
            )
        if key.revoked:
            typer.echo(f"{key.id} was already revoked")
            return
        key.revoked = True
        audit.append(session, "cli", "key.revoked", details={"key": key.id, "role": key.role})
    typer.echo(f"revoked {key_id.split('.')[0]}")


@tenants_app.command("add")
def tenants_add(
    tenant_id: Annotated[str, typer.Argument(help="The tenant's id (letters, digits, _ . -).")],
    kind: Annotated[str, typer.Option(help="merchant or platform.")] = "merchant",
    name: Annotated[str, typer.Option(help="A name people read; default the id.")] = "",
) -> None:
    """Add a merchant (or platform) tenant, as POST /v1/tenants does for an admin."""
    from .store.sql import audit
    from .store.sql.models import Tenant

    if kind not in ("merchant", "platform") or not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", tenant_id):
        raise _fail(
            "error [usage] a tenant id is 1-40 letters, digits, _ . -; --kind is merchant or "
            "platform"
        )
    database = _existing_database(_settings())
    with database.session() as session:
        existing = session.get(Tenant, tenant_id)
        if existing is not None:
            typer.echo(f"tenant {tenant_id} already exists ({existing.kind}); nothing changed")
            return
        session.add(Tenant(id=tenant_id, kind=kind, name=name or tenant_id))
        audit.append(session, "cli", "tenant.saved", details={"tenant": tenant_id})
    typer.echo(f"tenant {tenant_id} ({kind}) added")


def _operate(settings: Settings) -> None:
    """What a long-running command sets up before anything else: its logs (JSON lines by
    default) and the shared metrics directory (before the first metric is touched)."""
    from . import logs, metrics
    from .store.private import private_folder

    logs.configure(settings.log_level, json_lines=settings.log_format == "json")
    # The metrics folder is the first thing made in a new data folder: the data folder is made
    # private first (store/private.py), or mkdir would give it the umask's mode.
    private_folder(Path(settings.data_dir))
    metrics.configure(settings.metrics_dir or Path(settings.data_dir) / "metrics")


def _metrics_listener(settings: Settings) -> None:
    """``/metrics`` with no key on ``metrics_host:metrics_port``, for the scraper."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    from .metrics import metrics
    from .service.routes.metrics import read_gauges
    from .store import Database

    database = Database(settings)

    class _Gauges:
        """Reads the database's gauges at each scrape, before the samples are summed."""

        def collect(self) -> list[object]:
            with database.session() as session:
                read_gauges(session)
            return []

    metrics()
    registry = CollectorRegistry()
    registry.register(_Gauges())  # type: ignore[arg-type]
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Run the claims service (API, in-process analysis and scheduler) in one command."""
    import uvicorn
    from sqlalchemy import select

    from .service import create_app
    from .service.auth import create_key
    from .store.sql.models import ApiKey

    settings = _settings()
    _checked_policy(settings)
    _pii_key_on_a_server(settings)
    _operate(settings)
    database = _open_database(settings, create=True)
    # The first admin key is printed for the embedded default only: on a shared database the
    # API's output goes to a log that many read (an integrator's walkthrough found one there),
    # and docs/service.md (step 8) has the operator make it with `refundlens keys create`.
    embedded = database.engine.url.get_backend_name() == "sqlite"
    with database.session() as session:
        first = session.execute(select(ApiKey).where(ApiKey.role == "admin")).first() is None
        token = (
            create_key(session, "admin", label="first start", by="cli")
            if first and embedded
            else None
        )
    typer.echo(
        f"refundlens {__version__} serving on http://{host}:{port}  "
        "(web page: /web/, API: /v1, OpenAPI: /openapi.json)"
    )
    # Neither password is printed: the broker's went to the log whole (an integrator's
    # walkthrough), beside the database's masked one.
    tasks = (
        f"celery at {_without_passwords(settings.broker_url)}"
        if settings.broker_url
        else _embedded_tasks(settings)
    )
    typer.echo(f"data: {database.engine.url.render_as_string(hide_password=True)}; tasks: {tasks}")
    if first and not embedded:
        typer.echo(
            "no admin key yet: make one with `refundlens keys create --role admin --label NAME` "
            "(docs/service.md, At platform scale, step 8)"
        )
    if token:
        # Framed: the database's migration log lines come just before it on a first start.
        rule = "=" * 72
        typer.echo(f"\n{rule}\nadmin key (shown once, keep it): {token}\n{rule}\n")
    if settings.metrics_port:
        _metrics_listener(settings)
        typer.echo(f"metrics: http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    # log_config=None: uvicorn logs through the handler _operate installed (JSON lines). No
    # access log: it writes raw paths, and a capture link's path is the buyer's capability;
    # refundlens.http writes one line per request with the route's template instead.
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)


@app.command()
def report(
    claim_id: Annotated[str, typer.Argument(help="The claim's id (clm_...).")],
    fmt: Annotated[str, typer.Option("--format", help="html or pdf.")] = "html",
    out: Annotated[
        Path | None, typer.Option(help="File to write; default refundlens-<claim>.<format>.")
    ] = None,
    lang: Annotated[str, typer.Option(help="zh or en.")] = "zh",
    content: Annotated[
        Path | None,
        typer.Option(
            help="Instead of the report, write the case data its 'report content sha256' "
            "covers (canonical JSON) to this file and print that sha256; `sha256sum FILE` "
            "gives the same value."
        ),
    ] = None,
    shop: Annotated[
        str | None,
        typer.Option(
            help="The report as this shop (merchant tenant id) downloads it: the buyer's "
            "record at that shop only (check a merchant's report's content sha256 with it)."
        ),
    ] = None,
    content_version: Annotated[
        int | None,
        typer.Option(
            help="With --content: the layout of the case data of a report issued by an "
            "earlier version (1: before 2026-12-06), to check its printed sha256."
        ),
    ] = None,
) -> None:
    """Write the evidence report of one claim (case facts, photos, findings, audit trail, rules)."""
    from .errors import NotFound, RefundlensError
    from .report.evidence import (
        CONTENT_VERSION,
        CONTENT_VERSIONS,
        content_json,
        gather,
        render_html,
        render_pdf,
    )
    from .store import BlobStore

    if fmt not in ("html", "pdf"):
        raise _fail("error [usage] --format must be html or pdf.")
    lang = _language(lang)
    if content_version is not None and (content is None or content_version not in CONTENT_VERSIONS):
        raise _fail(
            "error [usage] --content-version goes with --content and is one of "
            + ", ".join(str(v) for v in CONTENT_VERSIONS)
            + "."
        )
    settings = _settings()
    database = _existing_database(settings)
    try:
        with database.session() as session:
            blobs = BlobStore(f"{settings.data_dir}/blobs")
            case = gather(session, blobs, claim_id, shop=shop, settings=settings)
            if content is not None:
                import hashlib

                data = content_json(case, settings.jurisdiction, content_version or CONTENT_VERSION)
                content.write_bytes(data)
                typer.echo(f"{hashlib.sha256(data).hexdigest()}  {content}")
                return
            html = render_html(
                case, "zh_CN" if lang.startswith("zh") else "en", settings.jurisdiction
            )
    except NotFound as exc:  # the API's wording hides others' claims; here the database is ours
        raise _fail(f"error [{exc.code}] no claim {claim_id!r} in this database.") from exc
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    target = out or Path(f"refundlens-{claim_id}.{fmt}")
    try:
        if fmt == "html":
            target.write_text(html, encoding="utf-8")
        else:
            target.write_bytes(render_pdf(html, settings.chromium_path))
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    except OSError as exc:
        raise _fail(
            f"error [output.unwritable] cannot write {target}: {exc.strerror or exc}."
        ) from exc
    typer.echo(f"evidence report written to {target}")


def _without_passwords(broker_url: str) -> str:
    """The broker URL to print: each of a failover list's URLs (``a;b``) with its password
    masked, or only "set" where one cannot be read (a review: kombu masks the first alone, and
    raised on a sentinel list, which stopped ``serve``)."""
    from kombu.utils.url import maybe_sanitize_url

    try:
        return ";".join(str(maybe_sanitize_url(part)) for part in broker_url.split(";"))
    except Exception:
        return "(set)"


def _embedded_tasks(settings: Settings) -> str:
    """How the embedded default runs its tasks, as docs/service.md says it."""
    n = settings.embedded_analysis_processes
    # "in-process", as /healthz names it (a walkthrough read "embedded" here and "in-process"
    # there and wondered which it was).
    return (
        f"in-process ({n} analysis process{'es' if n > 1 else ''} beside the server)"
        if n
        else "in-process (analyses in the server's own process)"
    )


@app.command("packing-video")
def packing_video(
    order_id: Annotated[str, typer.Argument(help="The order (ord_...).")],
    video: Annotated[Path, typer.Argument(help="The packing video file.")],
) -> None:
    """Register a packing video for an order: its sharp frames become references for the order."""
    from . import cases
    from .config import service_settings
    from .errors import RefundlensError
    from .store import BlobStore
    from .store.sql.models import Order
    from .store.sql.repositories import SqlStore

    settings = service_settings(_settings())
    database = _existing_database(settings)
    try:
        from .media.video import probe_video
        from .runtime import Runtime
        from .service.fields import file_name
        from .workers.tasks import process_packing_video

        # Read up to one byte past the limit: a file of many GB given by mistake (or a pipe,
        # whose size says nothing) is refused without being read whole.
        with video.open("rb") as stream:
            data = stream.read(settings.video_max_bytes + 1)
        if len(data) > settings.video_max_bytes:
            raise RefundlensError(
                "media.too_large",
                f"The video is over {settings.video_max_bytes} bytes, the limit (video_max_bytes).",
            )

        header = probe_video(data, settings)
        blobs = BlobStore(f"{settings.data_dir}/blobs")
        sha = blobs.put(data)
        with database.session() as session:
            order = session.get(Order, order_id)
            if order is None:
                raise cases.NotFound("order", order_id)
            # The API's limits hold here too (an order's videos, a shop's waiting ones), and a
            # video sent before is answered as it is, not decoded again.
            store = SqlStore(session)
            sent = cases.packing_video_room(store, order, sha, settings)
            if sent is None:
                row = cases.register_packing_video(
                    store,
                    cases.Actor("cli", "admin"),
                    order,
                    file_name(video.name),  # kept as the API keeps a name: a label, cleaned
                    sha,
                    header,
                    settings,
                )
                # Marked queued: a server running on the same data does not take it too.
                cases.mark_packing_videos_queued(store, [row.id])
            video_id = sent.id if sent is not None else row.id
            waiting = sent is None or sent.status == "pending"
        if waiting:
            # Here and now (the CLI is the task runner), outside any transaction; a video left
            # pending by an interrupted run is taken up again (processing it twice is safe).
            runtime = Runtime(settings)
            process_packing_video(runtime, video_id)
            runtime.db.dispose()
        with database.session() as session:
            from .store.sql.models import PackingVideo

            done = session.get(PackingVideo, video_id)
            assert done is not None
            if done.status == "failed":
                code, _, said = done.error.partition(":")
                raise RefundlensError(code, said.strip() or done.error)
            kept = list(done.frames_kept or [])
            pending = done.status != "done"
    except OSError as exc:
        raise _fail(f"error [media.unreadable] cannot read {video}: {exc.strerror or exc}") from exc
    except RefundlensError as exc:
        raise _fail(f"error [{exc.code}] {exc.message}") from exc
    if pending:
        typer.echo(f"{video.name} is already on {order_id} ({video_id}), still being processed")
        return
    before = " (sent before)" if sent is not None else ""
    frames = "1 frame" if len(kept) == 1 else f"{len(kept)} frames"
    typer.echo(f"{frames} of {video.name} kept as references for {order_id}{before}")


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Analyses at a time in this worker.")] = 1,
    beat: Annotated[
        bool,
        typer.Option(
            help="Also run the 10-second tick (at least one worker must; several may: one "
            "tick at a time queues claims, under a lease)."
        ),
    ] = True,
    queues: Annotated[
        str,
        typer.Option(
            help="Queues this worker takes tasks from: refundlens (claims' analyses) and "
            "refundlens.videos (packing videos). Both by default; a claims-only worker "
            "(--queues refundlens) never waits behind a video."
        ),
    ] = "refundlens,refundlens.videos",
) -> None:
    """Run a Celery worker for REFUNDLENS_BROKER_URL (Redis or RabbitMQ)."""
    settings = _settings()
    if not settings.broker_url:
        raise _fail(
            "error [settings.broker_required] set REFUNDLENS_BROKER_URL (redis://... or "
            "amqp://...) to run a worker"
        )
    _pii_key_on_a_server(settings)
    _operate(settings)
    _worker_can_work(settings)
    from .workers.celery_app import app as celery_app

    celery_app.conf.worker_hijack_root_logger = False  # keep the JSON lines of _operate

    from .workers.runner import CLAIM_QUEUE, VIDEO_QUEUE

    chosen = [q.strip() for q in queues.split(",") if q.strip()]
    if not chosen or set(chosen) - {CLAIM_QUEUE, VIDEO_QUEUE}:
        raise _fail(
            f"error [usage] --queues takes {CLAIM_QUEUE} and/or {VIDEO_QUEUE}, comma-separated"
        )
    argv = ["worker", "--loglevel=INFO", f"--concurrency={concurrency}", "-Q", ",".join(chosen)]
    # Two workers on one host both took celery@<host>, and Celery warned of a clash.
    argv += ["--hostname", f"refundlens-{os.getpid()}@%h"]
    if beat:
        argv.append("--beat")
    celery_app.worker_main(argv)


def _pii_key_on_a_server(settings: Settings) -> None:
    """With a database server, personal data is sealed with ``pii_key`` from the secret store,
    not with a key file made in ``data_dir``: that folder is the blob storage every host mounts
    and backs up, beside the data the key seals (``pii_key_file_allowed`` for a trial)."""
    if settings.database_url and not settings.pii_key and not settings.pii_key_file_allowed:
        raise _fail(
            "error [settings.pii_key_required] with a database server, set REFUNDLENS_PII_KEY "
            "(the same on every API and worker host; docs/service.md, 'At platform scale'), or "
            "REFUNDLENS_PII_KEY_FILE_ALLOWED=true to seal with a key file in the data folder "
            "for a trial"
        )


def _worker_can_work(settings: Settings) -> None:
    """Refuse to start a worker that would take tasks and fail each one: a database it cannot
    reach or whose schema is not this release's, or a data folder that is not the one the API
    stores photos in (the newest claim photo is not there). Said in one line, exit 2."""
    from sqlalchemy import select

    from .store import BlobStore
    from .store.sql.models import ClaimPhoto

    database = _existing_database(settings)
    try:
        with database.session() as session:
            newest = session.execute(
                select(ClaimPhoto.sha256).order_by(ClaimPhoto.created_at.desc()).limit(1)
            ).scalar()
    finally:
        database.dispose()
    blobs = Path(settings.data_dir) / "blobs"
    if newest is not None and not BlobStore(str(blobs)).exists(newest):
        raise _fail(
            f"error [worker.wrong_data_dir] the newest claim photo ({newest[:12]}...) is not in "
            f"{blobs.resolve()}: set REFUNDLENS_DATA_DIR to the storage every API and worker "
            "host mounts"
        )


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
