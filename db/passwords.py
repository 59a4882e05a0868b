"""Password rules: at least 12 characters and hard to guess by zxcvbn's estimate (score 3 of 4 or better).

Length alone let "password1234" through; zxcvbn (Dropbox's estimator, maintained on PyPI as ``zxcvbn``) knows common
passwords, keyboard walks, repeats, dates and l33t substitutions, and is told the user name and the product's name so
that "alice-drgnet-2024" scores as weak for alice. Score 3 means "safely unguessable: moderate protection from an
offline slow-hash scenario" (about 10^8 guesses or more), which argon2id hashing and the sign-in throttle build on.
"""

from __future__ import annotations

from collections.abc import Iterable

from zxcvbn import zxcvbn

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
#: zxcvbn's score runs 0 (too guessable) to 4 (very unguessable).
MIN_PASSWORD_SCORE = 3
#: zxcvbn's matching is quadratic in the length; what follows the first characters cannot make a password weaker.
_SCORED_PREFIX = 100
_CONTEXT_WORDS = ("drgnet", "retinopathy", "review", "fundus")


class WeakPasswordError(ValueError):
    """A password the rules refuse; the message says why and how to choose a better one (never the password)."""


def check_password_strength(password: str, user_inputs: Iterable[str] = ()) -> None:
    """Refuse a password that is too short, too long or too easy to guess.

    Args:
        password: the candidate password.
        user_inputs: words the password must not lean on (the user name, say).

    Raises:
        WeakPasswordError: naming the rule broken and zxcvbn's advice.
    """
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password too long: use at most {MAX_PASSWORD_LENGTH} characters")
    words = [w for w in (*user_inputs, *_CONTEXT_WORDS) if w]
    result = zxcvbn(password[:_SCORED_PREFIX], user_inputs=words)
    if result["score"] < MIN_PASSWORD_SCORE:
        feedback = result.get("feedback") or {}
        advice = " ".join(x for x in [feedback.get("warning") or "", *(feedback.get("suggestions") or [])] if x)
        raise WeakPasswordError(
            f"password too easy to guess (strength {result['score']} of 4, needs {MIN_PASSWORD_SCORE})"
            + (f": {advice}" if advice else ": use a few uncommon words or a longer random phrase")
        )
