"""Sign-in rules kept in the database, so every app process applies the same ones.

- **Throttling.** Failed sign-ins are counted per account (the name typed, existing or not) and per client (network
  address). After ``f`` failures the next attempt is refused until ``delay(f) = min(max, base * 2**(f-1))`` seconds
  have passed since the last one, without checking the password (so waiting out the delay is the only way on), and
  after :attr:`AccountPolicy.account_lockout` (account) or :attr:`AccountPolicy.client_lockout` (client) failures the
  account or client is locked until an admin unlocks it (Users page, ``drgnet user unlock``). A success resets the
  account's count; a client's count is forgotten only after an hour without failures, so signing in to one's own
  account between guesses at others does not reset the clock.
- **Sessions.** A sign-in starts a server-side session: the browser keeps a random token (in a cookie), the table
  keeps its sha256, when it was last used and whether it was revoked. A session ends at sign-out, after
  :attr:`AccountPolicy.session_idle_s` without a page run, after :attr:`AccountPolicy.session_max_age_s` in any case,
  when the account is disabled and when its password changes.
- **Passwords.** Changing one's own password needs the current one; an admin's reset sets a temporary password that
  must be changed at the next sign-in. Both end the user's other sessions.

Every decision is audited in the same transaction: ``user.login``, ``user.login_failed``, ``user.login_refused``,
``user.lockout`` / ``client.lockout``, ``user.unlock`` / ``client.unlock``, ``user.logout``,
``user.session_expired``, ``user.password_change``, ``user.password_reset``.

Like :mod:`db.repository`, whose audit, write-lock and password-hash helpers it shares, every function takes a
session and never commits. This package holds the rules; the rows they read and write go through the repository
(:mod:`db.repository.throttles`, :mod:`db.repository.sessions`, :mod:`db.repository.users`). One module per part:
``_policy`` (the numbers), ``_throttling``, ``_sessions``, ``_passwords``; import from ``db.accounts``.
"""

from db.accounts._passwords import change_password, reset_password
from db.accounts._policy import POLICY_ENV, WRONG_CREDENTIALS, AccountPolicy, SignInResult
from db.accounts._sessions import end_session, resume_session, revoke_sessions, session_expires_in, start_session
from db.accounts._throttling import locked_out, sign_in, unlock

__all__ = [
    "POLICY_ENV",
    "WRONG_CREDENTIALS",
    "AccountPolicy",
    "SignInResult",
    "change_password",
    "end_session",
    "locked_out",
    "reset_password",
    "resume_session",
    "revoke_sessions",
    "session_expires_in",
    "sign_in",
    "start_session",
    "unlock",
]
