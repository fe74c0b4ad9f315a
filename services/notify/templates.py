"""Message templates: Indonesian, versioned, with named placeholders and a variant per channel.

A :class:`Template` has a key (``proposal.rejected``), a version, the names of
its placeholders, and one text per channel: SMS (counted in segments),
WhatsApp (a pre-approved template name and its parameters, in order), email
(subject and body) and in-app (title and body). :func:`render` fills a
template for one channel; a missing or unknown placeholder is a
:class:`TemplateError` (a template and its data must agree exactly), never a
message with a hole in it.

A changed wording is a new version of the same key; the version a notification
was rendered with is recorded on it. WhatsApp templates must be approved by
Meta before use: the ``whatsapp`` name includes the version so an approved
template is never changed under its name.

SMS segments (:func:`sms_segments`): a message in the GSM 03.38 alphabet fits
160 characters in one segment, 153 per segment when concatenated (characters
of the extension table count twice); any other character makes the message
UCS-2: 70 in one, 67 per segment.
"""

import functools
import math
import re
import string
from dataclasses import dataclass

CHANNELS = ("sms", "whatsapp", "email", "in_app")

GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€\f")


class TemplateError(Exception):
    """A template and the data given to it do not agree (a bug, not a caller's input)."""


_GSM_ONLY = re.compile("[" + re.escape("".join(sorted(GSM_BASIC | GSM_EXTENDED))) + "]*")
_GSM_EXTENDED = re.compile("[" + re.escape("".join(sorted(GSM_EXTENDED))) + "]")


def sms_segments(text):
    """How many SMS segments ``text`` takes: ``(segments, encoding)``."""
    if _GSM_ONLY.fullmatch(text):
        units = len(text) + len(_GSM_EXTENDED.findall(text))  # an extension counts twice
        single, multi, encoding = 160, 153, "gsm7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "ucs2"
    if units <= single:
        return 1, encoding
    return math.ceil(units / multi), encoding


@dataclass(frozen=True)
class Template:
    key: str
    version: int
    params: tuple
    sms: str
    whatsapp: str  # the pre-approved template's name; its parameters are ``params`` in order
    email_subject: str
    email_body: str
    in_app_title: str
    in_app_body: str

    def render(self, channel, params):
        """The message for ``channel``, as a JSON-native dict (see :func:`render`)."""
        missing = [p for p in self.params if p not in params]
        extra = [p for p in params if p not in self.params]
        if missing or extra:
            raise TemplateError(
                f"template {self.key} v{self.version}: missing {missing}, unexpected {extra}"
            )
        values = {k: _text(v) for k, v in params.items()}
        if channel == "sms":
            text = _fill(self, self.sms, values)
            segments, encoding = sms_segments(text)
            return {"text": text, "segments": segments, "encoding": encoding}
        if channel == "whatsapp":
            return {
                "template": self.whatsapp,
                "language": "id",
                "parameters": [values[p] for p in self.params],
            }
        if channel == "email":
            return {
                "subject": _fill(self, self.email_subject, values),
                "body": _fill(self, self.email_body, values),
            }
        if channel == "in_app":
            return {
                "title": _fill(self, self.in_app_title, values),
                "body": _fill(self, self.in_app_body, values),
            }
        raise TemplateError(f"unknown channel {channel!r}")


def _text(value):
    if isinstance(value, bool) or value is None:
        raise TemplateError("a placeholder value must be text or a number")
    return str(value)


def _fill(template, text, values):
    unknown = _names(text) - set(template.params)
    if unknown:
        raise TemplateError(f"template {template.key} v{template.version} uses {sorted(unknown)}")
    return text.format_map(values)


@functools.cache
def _names(text):
    """The placeholders of a template text (parsed once per text)."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


def rupiah(amount):
    """``Rp 1.250.000``: whole rupiah, dots between thousands."""
    return "Rp " + f"{int(amount):,}".replace(",", ".")


FOOTER_EMAIL = (
    "\n\nPesan ini dikirim otomatis oleh Rembug, sistem Musrenbang dan layanan kelurahan."
    "\nUbah preferensi pemberitahuan Anda di aplikasi."
)
SMS_PREFIX = "Rembug: "


def _t(key, params, text, subject, whatsapp, version=1, title=None):
    """A template whose channels share one sentence (SMS-sized)."""
    return Template(
        key=key,
        version=version,
        params=tuple(params),
        sms=SMS_PREFIX + text + " Balas BERHENTI utk berhenti.",
        whatsapp=f"{whatsapp}_v{version}",
        email_subject=subject,
        email_body="Yth. Bapak/Ibu,\n\n" + text + FOOTER_EMAIL,
        in_app_title=title or subject,
        in_app_body=text,
    )


TEMPLATES = {
    t.key: t
    for t in (
        _t(
            "proposal.submitted",
            ("title", "reference"),
            'Usulan "{title}" telah diterima kelurahan (nomor {reference}). Anda akan '
            "diberi tahu setiap perkembangannya.",
            'Usulan "{title}" diterima',
            "rembug_usulan_diterima",
        ),
        _t(
            "proposal.returned",
            ("title", "reason"),
            'Usulan "{title}" dikembalikan untuk diperbaiki. Alasan: {reason}',
            'Usulan "{title}" perlu diperbaiki',
            "rembug_usulan_dikembalikan",
        ),
        _t(
            "proposal.verified",
            ("title",),
            'Usulan "{title}" telah diverifikasi kelurahan.',
            'Usulan "{title}" terverifikasi',
            "rembug_usulan_terverifikasi",
        ),
        _t(
            "proposal.rejected",
            ("title", "reason"),
            'Usulan "{title}" ditolak. Alasan: {reason}',
            'Usulan "{title}" ditolak',
            "rembug_usulan_ditolak",
        ),
        _t(
            "proposal.cancelled",
            ("title", "reason"),
            'Usulan "{title}" dibatalkan. Alasan: {reason}',
            'Usulan "{title}" dibatalkan',
            "rembug_usulan_dibatalkan",
        ),
        _t(
            "proposal.merged",
            ("title", "survivor", "reason"),
            'Usulan "{title}" digabung ke usulan "{survivor}". Alasan: {reason}',
            'Usulan "{title}" digabung',
            "rembug_usulan_digabung",
        ),
        _t(
            "proposal.absorbed",
            ("title", "merged"),
            'Usulan "{merged}" digabung ke usulan "{title}"; pengusulnya ikut sebagai '
            "pengusul bersama.",
            'Usulan digabung ke "{title}"',
            "rembug_usulan_penggabungan",
        ),
        _t(
            "proposal.forwarded",
            ("title", "rank"),
            'Usulan "{title}" diteruskan ke Musrenbang Kecamatan dengan peringkat {rank}.',
            'Usulan "{title}" diteruskan ke kecamatan',
            "rembug_usulan_diteruskan",
        ),
        _t(
            "proposal.decided",
            ("title", "level", "decision", "reason"),
            'Keputusan {level} atas usulan "{title}": {decision}. {reason}',
            'Keputusan {level}: usulan "{title}"',
            "rembug_usulan_diputuskan",
        ),
        _t(
            "proposal.progressed",
            ("title", "percent", "milestone"),
            'Realisasi usulan "{title}": {percent}% ({milestone}).',
            'Realisasi usulan "{title}" {percent}%',
            "rembug_usulan_realisasi",
        ),
        _t(
            "proposal.realised",
            ("title",),
            'Usulan "{title}" telah selesai direalisasikan.',
            'Usulan "{title}" terealisasi',
            "rembug_usulan_terealisasi",
        ),
        _t(
            "forum.scheduled",
            ("year", "date", "place", "theme"),
            "Musrenbang Kelurahan RKPD {year} dijadwalkan {date} di {place}. Tema: {theme}",
            "Jadwal Musrenbang Kelurahan {year}",
            "rembug_musrenbang_jadwal",
        ),
        _t(
            "forum.held",
            ("year", "held_on", "attendance", "delegates"),
            "Musrenbang Kelurahan {year} telah dilaksanakan {held_on}, dihadiri {attendance} "
            "orang; {delegates} delegasi terpilih.",
            "Hasil Musrenbang Kelurahan {year}",
            "rembug_musrenbang_hasil",
        ),
        _t(
            "forum.ranked",
            ("year", "count"),
            "Peringkat usulan Musrenbang Kelurahan {year} telah ditetapkan: {count} usulan. "
            "Lihat urutannya di aplikasi.",
            "Peringkat usulan Musrenbang Kelurahan {year}",
            "rembug_musrenbang_peringkat",
        ),
        _t(
            "expense.recorded",
            ("amount", "description"),
            "Pengeluaran {amount} ({description}) menunggu persetujuan Anda.",
            "Pengeluaran {amount} menunggu persetujuan",
            "rembug_belanja_persetujuan",
        ),
        _t(
            "line.threshold_crossed",
            ("activity", "fiscal_year", "state", "realised", "allocated", "percent"),
            "Pagu {activity} TA {fiscal_year} {state}: terealisasi {realised} dari "
            "{allocated} ({percent}%).",
            "Pagu {activity} {state}",
            "rembug_pagu_batas",
        ),
        _t(
            "advance.overdue",
            ("advance_id", "outstanding", "age_days"),
            "Uang muka {advance_id} sebesar {outstanding} belum dipertanggungjawabkan "
            "setelah {age_days} hari.",
            "Uang muka belum dipertanggungjawabkan ({age_days} hari)",
            "rembug_uang_muka_terlambat",
        ),
        _t(
            "request.assigned",
            ("kind", "rw"),
            "Permohonan layanan {kind} di RW {rw} ditugaskan kepada Anda. "
            "Target selesai 24 jam; detail di aplikasi.",
            "Tugas layanan baru: {kind} di RW {rw}",
            "rembug_pamor_tugas",
        ),
        _t(
            "request.breached",
            ("kind", "rw"),
            "Permohonan layanan {kind} di RW {rw} melewati target 24 jam dan belum selesai.",
            "Layanan melewati target 24 jam: RW {rw}",
            "rembug_layanan_terlambat",
        ),
        _t(
            "resident.vulnerability_recorded",
            ("category", "rw"),
            "Data warga rentan baru ({category}) tercatat di RW {rw}. "
            "Buka aplikasi untuk tindak lanjut.",
            "Warga rentan baru di RW {rw}",
            "rembug_warga_rentan",
        ),
        _t(
            "city.awaiting_kecamatan",
            ("count", "kelurahan", "kecamatan", "year", "waiting"),
            "{count} usulan baru dari Kelurahan {kelurahan} diteruskan ke Musrenbang "
            "Kecamatan {kecamatan} RKPD {year}; {waiting} usulan kelurahan ini menunggu "
            "keputusan kecamatan.",
            "{count} usulan dari Kelurahan {kelurahan} menunggu Musrenbang Kecamatan",
            "rembug_kota_menunggu_kecamatan",
        ),
        _t(
            "city.awaiting_city",
            ("count", "kecamatan", "year", "waiting"),
            "{count} usulan dari Kecamatan {kecamatan} diterima Musrenbang Kecamatan RKPD "
            "{year}; {waiting} usulan kecamatan ini menunggu keputusan Musrenbang Kota.",
            "{count} usulan dari Kecamatan {kecamatan} menunggu keputusan kota",
            "rembug_kota_menunggu_kota",
        ),
    )
}


def template(key):
    """The current version of the template ``key``."""
    try:
        return TEMPLATES[key]
    except KeyError:
        raise TemplateError(f"no template {key!r}") from None
