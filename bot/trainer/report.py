"""The evaluation report for trainers: report.html and three plots, from one metrics dict.

report.html is one self-contained file (inline style, the plots embedded as data URIs;
no script, no font or style sheet from elsewhere), so it can be mailed or opened from a
shared folder on a machine without network. The same plots are also written as PNG files
beside it. Every text from the data (intent names, example messages, reasons) is escaped.
Written in Indonesian: the people who read it are the institution's trainers.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONFUSION_PNG = "confusion.png"
F1_PNG = "per_intent_f1.png"
ESCALATION_PNG = "escalation_recall.png"
REPORT_HTML = "report.html"

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:70em;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0 1em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#a40000;font-weight:bold}.good{color:#1a6b1a;font-weight:bold}
.muted{color:#666}img{max-width:100%;border:1px solid #ddd}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _f(value: Any, digits: int = 3) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return "" if value is None else _e(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
           numeric: Sequence[int] = ()) -> str:
    head = "".join(f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = _f(cell)
            cells.append(f'<td class="n">{text}</td>' if i in numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# -- plots -------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    # Figure without pyplot: no global state and no display backend (safe in a worker
    # thread, on a server without X); savefig uses the Agg canvas.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_confusion(metrics: dict[str, Any], path: Path) -> None:
    import numpy as np

    matrix = metrics["nlu"]["overall"]["matrix"]
    labels = matrix["labels"]
    counts = np.asarray(matrix["counts"], dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = max(6.0, 0.28 * len(labels) + 3)
    fig = _figure(size + 1.5, size)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("diprediksi")
    ax.set_ylabel("label benar")
    ax.set_title("Matriks kebingungan (bagian per baris), semua berkas uji NLU")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if counts[i, j] and i != j:
                ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=6,
                        color="#a40000")
    fig.colorbar(image, ax=ax, shrink=0.6)
    fig.savefig(path)


def plot_f1(metrics: dict[str, Any], path: Path, baseline: dict[str, Any] | None) -> None:
    per_intent = metrics["nlu"]["overall"]["per_intent"]
    labels = sorted(per_intent, key=lambda k: (per_intent[k]["f1"], k))
    fig = _figure(9, max(4.0, 0.22 * len(labels) + 1.5))
    ax = fig.add_subplot()
    ax.barh(range(len(labels)), [per_intent[k]["f1"] for k in labels], color="#4a7fb5",
            label="model ini")
    if baseline is not None:
        base = baseline["nlu"]["overall"]["per_intent"]
        points = [(i, base[k]["f1"]) for i, k in enumerate(labels) if k in base]
        ax.scatter([v for _, v in points], [i for i, _ in points], color="#d97700",
                   marker="|", s=120, zorder=3, label="pembanding")
        ax.legend(loc="lower right")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title("F1 per intent/topik (terendah di atas)")
    ax.invert_yaxis()
    fig.savefig(path)


def plot_escalation(metrics: dict[str, Any], path: Path,
                    baseline: dict[str, Any] | None) -> None:
    categories = metrics["escalation"]["categories"]
    names = list(categories)
    fig = _figure(9, 4.5)
    ax = fig.add_subplot()
    width = 0.4
    xs = range(len(names))
    ax.bar([x - width / 2 for x in xs], [categories[n]["escalated"] for n in names], width,
           color="#9bbcd9", label="dieskalasi (kategori apa pun)")
    ax.bar([x + width / 2 for x in xs], [categories[n]["recall"] for n in names], width,
           color=["#a40000" if categories[n].get("critical") else "#4a7fb5" for n in names],
           label="kategori benar (recall; merah: kritis)")
    if baseline is not None:
        base = baseline["escalation"]["categories"]
        ax.scatter([x + width / 2 for x, n in zip(xs, names, strict=True) if n in base],
                   [base[n]["recall"] for n in names if n in base], color="#d97700",
                   marker="_", s=300, zorder=3, label="recall pembanding")
    ax.set_xticks(list(xs), names, rotation=20, fontsize=8)
    ax.set_ylim(0, 1.3)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("bagian pesan uji")
    ax.set_title("Eskalasi per kategori, set uji tertahan")
    ax.legend(loc="upper center", fontsize=7, ncol=3)
    fig.savefig(path)


# -- the page -----------------------------------------------------------------------------


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></p>'


def _gate_section(gate: dict[str, Any]) -> list[str]:
    ok = bool(gate.get("ok"))
    verdict = ('<span class="good">LOLOS</span>' if ok else '<span class="bad">DITOLAK</span>')
    parts = [
        "<h2>Gerbang regresi</h2>",
        f"<p>Keputusan: {verdict}. Pembanding: <code>{_e(gate.get('baseline', ''))}</code>; "
        f"toleransi {_f(gate.get('tolerance'))} (angka gabungan), "
        f"{_f(gate.get('intent_tolerance'))} (F1 per intent); recall kategori kritis "
        "(darurat, menyakiti diri, ancaman) tidak boleh turun sama sekali.</p>",
    ]
    reasons = gate.get("reasons") or []
    if reasons:
        parts.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>")
    checks = gate.get("checks") or []
    if checks:
        rows = [(c["name"], c["baseline"], c["candidate"], c["candidate"] - c["baseline"],
                 c["limit"], "ya" if c["ok"] else "TIDAK") for c in checks
                if not c["name"].startswith("nlu intent ")]
        parts.append(_table(("ukuran", "pembanding", "model ini", "selisih", "batas",
                             "lolos"), rows, numeric=(1, 2, 3, 4)))
    return parts


def render(metrics: dict[str, Any], out: Path, title: str,
           meta: dict[str, Any] | None = None, baseline: dict[str, Any] | None = None,
           gate: dict[str, Any] | None = None) -> Path:
    """Write report.html and the plots into ``out``; returns the HTML file."""
    out.mkdir(parents=True, exist_ok=True)
    plot_confusion(metrics, out / CONFUSION_PNG)
    plot_f1(metrics, out / F1_PNG, baseline)
    plot_escalation(metrics, out / ESCALATION_PNG, baseline)
    meta = meta or {}
    nlu = metrics["nlu"]
    overall = nlu["overall"]
    parts = [
        "<!doctype html>", '<html lang="id"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _table(("", ""), [
            ("model", metrics.get("model") or meta.get("id") or "-"),
            ("dilatih oleh", meta.get("trained_by", "-")),
            ("dibuat", meta.get("created_at", "-")),
            ("hash data latih", str(meta.get("data_hash", "-"))[:16]),
            ("hash set uji", str(metrics.get("test_hash", "-"))[:16]),
            ("waktu latih", f"{meta['train_seconds']:.0f} detik"
             if isinstance(meta.get("train_seconds"), (int, float)) else "-"),
            ("waktu evaluasi", f"{metrics.get('eval_seconds', 0):.0f} detik"),
            ("ditulis", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ]),
        '<p class="muted">Semua angka diukur pada set uji terkunci (tests/nlu, tests/safety, '
        "tests/hoax) yang tidak pernah dipakai untuk melatih atau menyetel model.</p>",
    ]
    if gate is not None:
        parts += _gate_section(gate)
    file_rows = [(name, f["total"], f["accuracy"], f["macro_f1"], f["answered_right"],
                  f["answered_wrong"], f["routes"]["clarify"], f["routes"]["fallback"],
                  f["routes"]["escalate"], f["routes"]["hoax"])
                 for name, f in [*nlu["files"].items(), ("semua", overall)]]
    parts += [
        "<h2>NLU: pertanyaan rutin</h2>",
        "<p><em>Akurasi top-1</em>: topik peringkat pertama sama dengan label, apa pun "
        "rutenya. <em>Dijawab salah</em>: dijawab langsung dengan jawaban topik lain "
        "(kesalahan paling mahal). Eskalasi dan hoaks di sini adalah alarm palsu.</p>",
        _table(("berkas", "pesan", "akurasi top-1", "macro F1", "dijawab benar",
                "dijawab salah", "klarifikasi", "fallback", "eskalasi", "hoaks"),
               file_rows, numeric=tuple(range(1, 10))),
        _img(out / F1_PNG, "F1 per intent"),
    ]
    per_intent = overall["per_intent"]
    intent_rows = [(k, v["support"], v["precision"], v["recall"], v["f1"])
                   for k, v in sorted(per_intent.items(), key=lambda kv: (kv[1]["f1"], kv[0]))]
    parts += ["<h3>Per intent/topik (terendah dulu)</h3>",
              _table(("intent/topik", "dukungan", "presisi", "recall", "F1"), intent_rows,
                     numeric=(1, 2, 3, 4))]
    confusion_rows = []
    for c in overall["confusions"]:
        examples = "<br>".join(f"{_e(x['text'])} <span class=\"muted\">({_e(x['route'])})"
                               "</span>" for x in c["examples"])
        confusion_rows.append(
            f"<tr><td>{_e(c['label'])}</td><td>{_e(c['predicted'])}</td>"
            f'<td class="n">{c["count"]}</td><td>{examples}</td></tr>')
    parts += ["<h3>Kebingungan terbanyak</h3>",
              "<table><thead><tr><th>label benar</th><th>diprediksi</th>"
              '<th class="n">jumlah</th><th>contoh (rute)</th></tr></thead><tbody>'
              + "".join(confusion_rows) + "</tbody></table>",
              _img(out / CONFUSION_PNG, "matriks kebingungan")]
    escalation = metrics["escalation"]
    category_rows = [(name + (" (kritis)" if c.get("critical") else ""), c["support"],
                      c["escalated"], c["recall"])
                     for name, c in escalation["categories"].items()]
    eo = escalation["overall"]
    category_rows.append(("semua", eo["support"], eo["escalated"], eo["recall"]))
    parts += [
        "<h2>Eskalasi</h2>",
        "<p>Diukur dengan pengklasifikasi keselamatan milik versi model ini. "
        "<em>Dieskalasi</em>: diteruskan ke petugas dengan kategori apa pun; "
        "<em>recall</em>: dengan kategori yang benar.</p>",
        _table(("kategori", "pesan", "dieskalasi", "recall"), category_rows,
               numeric=(1, 2, 3)),
        _table(("ukuran", "nilai"), [
            ("akurasi kategori (di antara yang dieskalasi)", eo["category_accuracy"]),
            ("kritik warga / opini politik yang dieskalasi", escalation["criticism"]
             ["escalated"]),
            ("pertanyaan rutin yang dieskalasi", escalation["routine"]["escalated"]),
            ("pertanyaan rutin set NLU yang dieskalasi (seluruh alur)",
             escalation.get("nlu_escalated", 0.0)),
        ], numeric=(1,)),
        _img(out / ESCALATION_PNG, "eskalasi per kategori"),
    ]
    hoax = metrics["hoax"]
    parts += [
        "<h2>Hoaks</h2>",
        "<p>Parafrasa tertahan dari registri demo, lewat seluruh alur (Brain.decide).</p>",
        _table(("set", "pesan", "dikenali (hoaks benar)", "hoaks salah"), [
            ("pertanyaan", hoax["questions"]["support"], hoax["questions"]["recall"],
             hoax["questions"]["wrong"]),
            ("pesan berantai", hoax["chains"]["support"], hoax["chains"]["recall"],
             hoax["chains"]["wrong"]),
        ], numeric=(1, 2, 3)),
        _table(("ukuran", "nilai"), [
            ("klaim di luar registri yang dijawab sebagai hoaks",
             f"{hoax['unknown_claims']['matched']} dari {hoax['unknown_claims']['support']}"),
            ("pertanyaan rutin yang dijawab sebagai hoaks (alarm palsu)",
             hoax["routine_false_alarms"]),
        ], numeric=(1,)),
        "</body></html>",
    ]
    page = out / REPORT_HTML
    page.write_text("\n".join(parts) + "\n", "utf-8")
    return page
