"""The language and keyboard a Windows install is set up with, from the install image's own language.

Setup stops at its language page when the answer file's UILanguage is not a language of the image (an en-US
answer file on a de-DE ISO), so the language fields come from the chosen image's default language in
install.wim's image list (`WINDOWS/LANGUAGES/DEFAULT`, limapy.guest.windows.media), or from the ISO's label
(`CCCOMA_X64FRE_DE-DE_DV9`) when the list cannot be read. `osOpts.Windows.locale` picks another format and
keyboard (SystemLocale, UserLocale, InputLocale); it is also the display language when the image has it.

InputLocale is a language and keyboard pair. `DEFAULT_INPUT_PROFILES` is Microsoft's table "Default Input
Profiles (Input Locales) in Windows" (learn.microsoft.com/windows-hardware/manufacture/desktop/
default-input-locales-for-windows-language-packs; the primary profile of each language/region), which is what
Windows itself sets for a user locale. The unattend reference documents both forms for InputLocale (a language
tag, or `LCID:KLID`); the table's pair is written, as Windows' own OOBE would choose it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from limapy.base.errors import LimapyError

_IME_JA = "0411:{03B5835F-F03C-411B-9CE2-AA23E1171E36}{A76C93D9-5523-4E90-AAFA-4DB112F9AC76}"
_IME_KO = "0412:{A028AE76-01B1-46C2-99C4-ACD9858AE02F}{B5FE1F02-D5F2-4445-9C03-C568F23C99A1}"
_IME_ZH_CN = "0804:{81D4E9C9-1D3B-41BC-9E6C-4B40BF79E35E}{FA550B04-5AD7-411f-A5AC-CA038EC515D7}"
_IME_ZH_TW = "0404:{B115690A-EA02-48D5-A231-E3578D2FDF80}{B2F9C502-1742-11D4-9790-0080C882687E}"

#: language/region tag -> primary input profile (Microsoft, "Default Input Profiles (Input Locales) in Windows").
DEFAULT_INPUT_PROFILES: dict[str, str] = {
    "af-ZA": "0436:00000409", "sq-AL": "041c:0000041c", "ar-DZ": "1401:00020401", "ar-BH": "3c01:00000401",
    "ar-EG": "0c01:00000401", "ar-IQ": "0801:00000401", "ar-JO": "2c01:00000401", "ar-KW": "3401:00000401",
    "ar-LB": "3001:00000401", "ar-LY": "1001:00000401", "ar-MA": "1801:00020401", "ar-OM": "2001:00000401",
    "ar-QA": "4001:00000401", "ar-SA": "0401:00000401", "ar-SY": "2801:00000401", "ar-TN": "1c01:00020401",
    "ar-AE": "3801:00000401", "ar-YE": "2401:00000401", "hy-AM": "042b:0002042b", "az-Latn-AZ": "042c:0000042c",
    "az-Cyrl-AZ": "082c:0000082c", "eu-ES": "042d:0000040a", "be-BY": "0423:00000423", "bg-BG": "0402:00030402",
    "ca-ES": "0403:0000040a", "zh-CN": _IME_ZH_CN, "zh-TW": _IME_ZH_TW, "hr-BA": "101a:0000041a",
    "hr-HR": "041a:0000041a", "cs-CZ": "0405:00000405", "da-DK": "0406:00000406", "nl-BE": "0813:00000813",
    "nl-NL": "0413:00020409", "en-AU": "0c09:00000409", "en-CA": "1009:00000409", "en-IN": "4009:00004009",
    "en-IE": "1809:00001809", "en-NZ": "1409:00000409", "en-SG": "4809:00000409", "en-ZA": "1c09:00000409",
    "en-GB": "0809:00000809", "en-US": "0409:00000409", "et-EE": "0425:00000425", "fi-FI": "040b:0000040b",
    "fr-BE": "080c:0000080c", "fr-CA": "0c0c:00011009", "fr-FR": "040c:0000040c", "fr-LU": "140c:0000100c",
    "fr-CH": "100c:0000100c", "gl-ES": "0456:0000040a", "ka-GE": "0437:00010437", "de-AT": "0c07:00000407",
    "de-DE": "0407:00000407", "de-LI": "1407:00000807", "de-LU": "1007:00000407", "de-CH": "0807:00000807",
    "el-GR": "0408:00000408", "he-IL": "040d:0002040d", "hi-IN": "0439:00010439", "hu-HU": "040e:0000040e",
    "is-IS": "040f:0000040f", "id-ID": "0421:00000409", "it-IT": "0410:00000410", "it-CH": "0810:0000100c",
    "ja-JP": _IME_JA, "kk-KZ": "043f:0000043f", "ko-KR": _IME_KO, "lv-LV": "0426:00020426",
    "lt-LT": "0427:00010427", "lb-LU": "046e:0000046e", "mk-MK": "042f:0001042f", "ms-MY": "043e:00000409",
    "mt-MT": "043a:0000043a", "nb-NO": "0414:00000414", "nn-NO": "0814:00000414", "fa-IR": "0429:00000429",
    "pl-PL": "0415:00000415", "pt-BR": "0416:00000416", "pt-PT": "0816:00000816", "ro-RO": "0418:00010418",
    "ru-RU": "0419:00000419", "sr-Latn-RS": "241a:0000081a", "sr-Cyrl-RS": "281a:00000c1a",
    "sk-SK": "041b:0000041b", "sl-SI": "0424:00000424", "es-AR": "2c0a:0000080a", "es-CL": "340a:0000080a",
    "es-CO": "240a:0000080a", "es-MX": "080a:0000080a", "es-ES": "0c0a:0000040a", "es-US": "540a:0000080a",
    "sv-FI": "081d:0000041d", "sv-SE": "041d:0000041d", "th-TH": "041e:0000041e", "tr-TR": "041f:0000041f",
    "uk-UA": "0422:00020422", "vi-VN": "042a:0000042a", "cy-GB": "0452:00000452",
}  # fmt: skip
_BY_LOWER = {tag.lower(): tag for tag in DEFAULT_INPUT_PROFILES}
#: A language/region tag as Windows writes them (`de-DE`, `sr-Latn-RS`).
_TAG = re.compile(r"[a-z]{2,3}(?:-[a-z]{4})?-[a-z]{2}", re.IGNORECASE)
_LABEL_LANG = re.compile(r"_([A-Z]{2,3}-[A-Z]{2})(?:_|$)")


@dataclass(frozen=True)
class Locale:
    """What the answer file's language fields say."""

    ui: str  # SetupUILanguage/UILanguage: a language of the image
    locale: str  # SystemLocale, UserLocale
    keyboard: str  # InputLocale

    def fields(self) -> dict[str, str]:
        return {"ui_language": self.ui, "locale": self.locale, "input_locale": self.keyboard}


DEFAULT = Locale("en-US", "en-US", "0409:00000409")


def known(tag: str) -> str | None:
    """The table's spelling of a language/region tag (case-insensitively), or None."""
    return _BY_LOWER.get(tag.strip().lower())


def label_language(label: str) -> str | None:
    """The language of a Microsoft ISO label (`CCCOMA_X64FRE_DE-DE_DV9` -> de-DE), when it names one."""
    m = _LABEL_LANG.search(label.upper())
    return known(m.group(1)) if m else None


def choose(image_languages: tuple[str, ...], *, label: str = "", override: str | None = None) -> Locale:
    """The answer file's language fields for an image whose languages are `image_languages` (default first).

    Refuses (before anything is created) when neither the image nor its label names a language Windows has a
    keyboard for, unless `override` (osOpts.Windows.locale) gives one."""
    chosen = known(override) if override else None
    if override and chosen is None:
        raise LimapyError(
            f"osOpts.Windows.locale {override!r} is not a Windows language/region tag limapy knows a keyboard for",
            hint="e.g. de-DE, en-GB, fr-CA, ja-JP (Microsoft's 'Default Input Profiles' list)",
        )
    langs = [t for t in image_languages if _TAG.fullmatch(t)]
    if not langs:
        from_label = label_language(label)
        langs = [from_label] if from_label else []
    if not langs:
        if chosen is None:
            raise LimapyError(
                "the install image names no language (its image list has none, nor has the ISO's label): Setup "
                "would stop at its language page",
                hint="set osOpts.Windows.locale to the ISO's language (e.g. en-US), or use a Microsoft ISO",
            )
        return Locale(chosen, chosen, DEFAULT_INPUT_PROFILES[chosen])
    if chosen is not None:
        ui = next((lang for lang in langs if lang.lower() == chosen.lower()), langs[0])
        return Locale(ui, chosen, DEFAULT_INPUT_PROFILES[chosen])
    default = known(langs[0])
    if default is None:
        raise LimapyError(
            f"the install image's language {langs[0]} has no keyboard limapy knows (Setup needs an input locale)",
            hint=f"set osOpts.Windows.locale (e.g. en-US); the UI language stays {langs[0]}",
        )
    return Locale(langs[0], default, DEFAULT_INPUT_PROFILES[default])
