"""``garda trainer review``: label the review inbox from a terminal, one key per group.

It reads one line per answer (a key, Enter), not raw key presses: the same session then
works over ssh, in a plain pipe and in tests (``printf 'a\\nd\\nq\\n' | garda trainer
review``). What it prints is masked text only; anything a terminal would interpret
(escape sequences in a citizen's message) is replaced before it is shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from bot.trainer import inbox
from bot.trainer.nludata import Closest, LabelError, NluPaths, closest, intents

KEYS = ("[a] terima {proposal} · [1-{n}] pilih intent contoh terdekat · [i] ketik intent · "
        "[n] topik baru · [d] buang · [s] lewati · [q] keluar")
NO_PROPOSAL = "(tanpa usulan)"
ASK_INTENT = "Nama intent (mis. faq/ktp_baru): "


def printable(text: str) -> str:
    """``text`` as a terminal may show it: control characters (ANSI escapes) replaced."""
    return "".join(c if c.isprintable() else "?" for c in text)


@dataclass
class Tally:
    """What a session did, group by group."""

    decided: Counter[str] = field(default_factory=Counter)  # action -> groups
    items: int = 0
    written: list[str] = field(default_factory=list)          # data files, one per example
    skipped: int = 0

    def summary(self) -> str:
        text = (f"Selesai: {self.decided[inbox.ACCEPT]} kelompok diberi label "
                f"({len(self.written)} contoh ditulis), {self.decided[inbox.NEW_TOPIC]} topik "
                f"baru, {self.decided[inbox.DISCARD]} dibuang, {self.skipped} dilewati; "
                f"{self.items} pesan diputuskan.")
        if self.written:
            text += (" Contoh baru ada di " + ", ".join(sorted(set(self.written)))
                     + "; latih ulang model (garda train) agar berlaku.")
        return text


def describe(cluster: inbox.Cluster, number: int, total: int,
             near: Sequence[Closest]) -> list[str]:
    sources = ", ".join(f"{name} {count}" for name, count in cluster.sources)
    confidence = ("-" if cluster.confidence is None else f"{cluster.confidence:.2f}")
    lines = [
        f"== Kelompok {number} dari {total}: {cluster.count} pesan ({sources})",
        f"Teks     : {printable(cluster.text)}",
        f"Prediksi : {cluster.predicted or '-'} (keyakinan rata-rata {confidence})",
    ]
    if cluster.suggested:
        lines.append("Usulan   : " + ", ".join(
            f"{'bukan keduanya' if name == inbox.NONE_CHOSEN else name} ({count})"
            for name, count in cluster.suggested))
    lines.append("Contoh terdekat:")
    lines += [f"  {i}. {c.intent} ({c.score:.2f})  {printable(c.example)}"
              for i, c in enumerate(near, 1)] or ["  (tidak ada)"]
    lines.append(KEYS.format(proposal=cluster.proposal or NO_PROPOSAL, n=max(1, len(near))))
    return lines


def review(engine: Engine, read: Callable[[], str | None], write: Callable[[str], None],
           user: str, paths: NluPaths | None = None, limit: int | None = None) -> Tally:
    """Go through the open groups, largest first, until they run out, ``q`` or the end of
    the input. ``read`` returns one line (None at the end); ``write`` prints one line."""
    paths = paths or NluPaths.default()
    known = set(intents(paths))
    groups = inbox.clusters(engine, limit)
    tally = Tally()
    if not groups:
        write("Kotak tinjauan kosong: tidak ada pesan terbuka untuk diberi label.")
        return tally
    for number, cluster in enumerate(groups, 1):
        near = closest(cluster.text, paths=paths)
        for line in describe(cluster, number, len(groups), near):
            write(line)
        while True:
            answer = read()
            if answer is None or answer.strip().lower() == "q":
                write(tally.summary())
                return tally
            choice = _choice(answer.strip(), cluster, near, known, read, write)
            if choice is None:
                continue  # explained; ask again
            action, label = choice
            if action == "skip":
                tally.skipped += 1
                break
            try:
                outcome = inbox.decide(engine, cluster.key, action, user, label, paths)
            except LabelError as error:
                write(f"Tidak tercatat: {error}")
                continue
            tally.decided[action] += 1
            tally.items += outcome.items
            if outcome.written is not None:
                tally.written.append(str(outcome.written.path))
                write(f"Ditulis ke {outcome.written.path}: - {printable(outcome.written.example)}")
            else:
                write(f"Tercatat: {action} ({outcome.items} pesan).")
            break
    write(tally.summary())
    return tally


def _choice(answer: str, cluster: inbox.Cluster, near: Sequence[Closest], known: set[str],
            read: Callable[[], str | None], write: Callable[[str], None]
            ) -> tuple[str, str | None] | None:
    """(action, label) for one answer; None (after saying why) when it must be asked again."""
    key, _, rest = answer.partition(" ")
    key = key.lower()
    if key == "a":
        if cluster.proposal is None:
            write("Kelompok ini tanpa usulan intent: pilih nomor atau ketik [i].")
            return None
        return inbox.ACCEPT, cluster.proposal
    if key.isdigit():
        index = int(key)
        if not 1 <= index <= len(near):
            write(f"Pilih nomor 1 sampai {len(near)}." if near else "Tidak ada contoh terdekat.")
            return None
        return inbox.ACCEPT, near[index - 1].intent
    if key == "i":
        name = rest.strip()
        if not name:
            write(ASK_INTENT)
            name = (read() or "").strip()
        if name not in known:
            write(f"Intent {printable(name)!r} tidak ada di data/nlu. Topik baru: tekan [n].")
            return None
        return inbox.ACCEPT, name
    if key == "n":
        return inbox.NEW_TOPIC, None
    if key == "d":
        return inbox.DISCARD, None
    if key == "s":
        return "skip", None
    write("Tombol tidak dikenal. " + KEYS.format(proposal=cluster.proposal or NO_PROPOSAL,
                                                n=max(1, len(near))))
    return None
