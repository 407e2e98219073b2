"""eSpeak NG speech synthesis through ctypes, using the library and voices shipped in the
`espeakng-loader` wheel (nothing is downloaded, no system package is needed)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # synthesise in the calling thread into our callback; nothing is played
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4

_INITIALIZE_PHONEME_EVENTS = 0x0001
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT of speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    """A speaker: eSpeak voice name (language+variant), words per minute, pitch and pitch range."""

    name: str
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50


class EspeakError(RuntimeError):
    pass


class Espeak:
    """One synthesiser per process (eSpeak NG keeps global state).  phoneme_events: also collect
    each phoneme's start (eSpeak's mnemonic, milliseconds into the audio) as `self.phonemes`."""

    def __init__(self, phoneme_events: bool = False) -> None:
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - a dependency of the package
            raise EspeakError("the 'espeakng-loader' package is not installed (pip install espeakng-loader)") from e
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        options = _INITIALIZE_PHONEME_EVENTS if phoneme_events else 0
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), options
        )
        if self.sample_rate <= 0:
            raise EspeakError(f"eSpeak NG failed to initialise (code {self.sample_rate})")
        self._chunks: list[np.ndarray] = []
        self.phonemes: list[tuple[str, int]] = []  # (mnemonic, start in ms) of the last synthesis
        # Breathy voice variants mix in pseudo-random noise; seeding eSpeak NG's generator (and
        # libc's rand(), which some builds use) per utterance makes the audio independent of
        # what this process synthesised before.
        self._libc = ctypes.CDLL(None)
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)

        def collect(wav, n, events):
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            k = 0
            while phoneme_events and events and events[k].type != _EVENT_LIST_TERMINATED:
                if events[k].type == _EVENT_PHONEME:
                    self.phonemes.append((events[k].id.string.decode("utf-8", "replace"), events[k].audio_position))
                k += 1
            return 0

        self._callback = _SynthCallback(collect)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)

    def synthesize(self, text: str, voice: Voice, seed: int = 0) -> np.ndarray:
        """Return int16 samples at self.sample_rate; the same (text, voice, seed) gives the same samples."""
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise EspeakError(f"unknown eSpeak NG voice '{voice.name}'")
        self._lib.espeak_SetParameter(_PARAM_RATE, voice.rate, 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, voice.pitch_range, 0)
        self._chunks, self.phonemes = [], []
        self._libc.srand(ctypes.c_uint(seed & 0xFFFFFFFF))
        if self._set_seed is not None:
            self._set_seed(ctypes.c_long(seed & 0x7FFFFFFF))
        data = text.encode("utf-8")
        code = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if code != 0:
            raise EspeakError(f"eSpeak NG could not synthesise {text!r} (code {code})")
        self._lib.espeak_Synchronize()
        if not self._chunks:
            raise EspeakError(f"eSpeak NG produced no audio for {text!r}")
        return np.concatenate(self._chunks)
