"""The only authlib wiring: grants, endpoints and the bearer-token guard over our tables.

Our rules, not authlib's defaults: codes expire 60 s after issue and work once, even under
racing redemptions (a second attempt also revokes what the first one got); refresh tokens
rotate and a replayed one ends its application session; PKCE is S256 only and required of
public clients; every time comes from the app clock.
"""

from __future__ import annotations

from datetime import timedelta

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import current_app, g
from sqlalchemy import select, update

from directory.db import db
from directory.sessions import digest
from idp import context, keys
from idp.oidc.models import AuthorizationCode, OAuthClient, Token

ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
ID_TOKEN_LIFETIME = timedelta(hours=1)
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
APP_SESSION_REPLAYED = "refresh_token_replay"

def _query_client(client_id: str) -> OAuthClient | None:
    return db.session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def _save_token(token: dict, request) -> None:
    code, previous = request.authorization_code, getattr(request, "refresh_token", None)
    app_session_id = code.app_session_id if code else previous.app_session_id if previous else None
    db.session.add(
        Token(
            client_id=request.client.client_id,
            user_id=request.user.id if request.user else None,
            app_session_id=app_session_id,
            code_id=code.id if code else None,
            access_token_hash=digest(token["access_token"]),
            refresh_token_hash=digest(token["refresh_token"]) if token.get("refresh_token") else None,
            scope=token.get("scope", ""),
            issued_at=context.now(),
            expires_in=token["expires_in"],
        )
    )
    db.session.commit()


def _revoke_where(*criteria) -> None:
    db.session.execute(update(Token).where(Token.revoked_at.is_(None), *criteria).values(revoked_at=context.now()))


class S256Challenge(CodeChallenge):
    """PKCE with S256 only (`plain` refused), and required of public clients up front."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        if grant.request.client.is_public and not grant.request.payload.data.get("code_challenge"):
            raise InvalidRequestError("Public clients must use PKCE with code_challenge_method=S256.")
        return super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def save_authorization_code(self, code: str, request) -> None:
        data = request.payload.data
        db.session.add(
            AuthorizationCode(
                code_hash=digest(code),
                client_id=request.client.client_id,
                user_id=request.user.id,
                app_session_id=g.app_session.id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.payload.scope,
                nonce=data.get("nonce"),
                auth_time=g.directory_session.authenticated_at,
                issued_at=context.now(),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )
        )
        db.session.commit()

    def query_authorization_code(self, code: str, client: OAuthClient) -> AuthorizationCode | None:
        found = db.session.scalar(
            select(AuthorizationCode).where(
                AuthorizationCode.code_hash == digest(code), AuthorizationCode.client_id == client.client_id
            )
        )
        return found if found is not None and not found.is_expired() else None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Kept, marked redeemed, so a replay can be recognised (authenticate_user)."""

    def authenticate_user(self, authorization_code: AuthorizationCode):
        """Redeem the code, exactly once: the conditional UPDATE picks one winner among racing
        requests. A second redemption revokes every token the first one produced."""
        won = db.session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == authorization_code.id, AuthorizationCode.redeemed_at.is_(None))
            .values(redeemed_at=context.now())
        ).rowcount == 1
        if not won:
            _revoke_where(Token.code_id == authorization_code.id)
        db.session.commit()
        app_session = authorization_code.app_session
        if not won or app_session.ended_at is not None or authorization_code.user.disabled:
            return None
        return authorization_code.user


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        """Rotation with replay detection: a refresh token works once. Presenting it again
        (a thief, or the app after a thief) ends the whole application session."""
        token = db.session.scalar(select(Token).where(Token.refresh_token_hash == digest(refresh_token)))
        if token is None or token.revoked_at is not None or not token.session_alive(context.now()):
            return None
        fresh = db.session.execute(
            update(Token).where(Token.id == token.id, Token.refresh_used_at.is_(None)).values(refresh_used_at=context.now())
        ).rowcount == 1
        if not fresh and token.app_session is not None:
            token.app_session.ended_at, token.app_session.end_reason = context.now(), APP_SESSION_REPLAYED
            _revoke_where(Token.app_session_id == token.app_session_id)
        db.session.commit()
        return token if fresh else None

    def authenticate_user(self, refresh_token: Token):
        user = refresh_token.user
        return None if user is None or user.disabled else user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        """Already spent in authenticate_refresh_token; a refresh is the app session's activity."""
        refresh_token.app_session.last_used_at = context.now()
        db.session.commit()


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class DirectoryOpenIDCode(OpenIDCode):
    """ID tokens: signed by the key ring with the client's algorithm, stamped by the app clock,
    carrying `sid` (the application session's, never the directory session's) and `amr`."""

    def exists_nonce(self, nonce: str, request) -> bool:
        return db.session.scalar(
            select(AuthorizationCode.id).where(
                AuthorizationCode.nonce == nonce, AuthorizationCode.client_id == request.payload.client_id
            )
        ) is not None

    def resolve_client_private_key(self, client: OAuthClient):
        return keys.current(current_app).signing_key(client.id_token_signed_response_alg)

    def get_encode_header(self, client: OAuthClient) -> dict:
        alg = client.id_token_signed_response_alg
        return {"alg": alg, "kid": keys.current(current_app).kid(alg)}

    def get_client_claims(self, client: OAuthClient) -> dict:
        now = int(context.now().timestamp())
        return {
            "iss": current_app.config["ISSUER"],
            "aud": [client.client_id],
            "iat": now,
            "exp": now + int(ID_TOKEN_LIFETIME.total_seconds()),
        }

    def get_authorization_code_claims(self, authorization_code: AuthorizationCode) -> dict:
        claims = super().get_authorization_code_claims(authorization_code)
        claims["sid"] = authorization_code.app_session.sid
        return claims

    def generate_user_info(self, user, scope: str) -> UserInfo:
        return user_info(user, scope)


def user_info(user, scope: str) -> UserInfo:
    """Claims released for `scope`; `sub` is the case-folded username, which never changes."""
    info = UserInfo(sub=user.username)
    scopes = scope.split()
    if "profile" in scopes:
        info.update(name=user.display_name, preferred_username=user.username)
    if "email" in scopes and user.email:
        info.update(email=user.email)
    return info


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return _find_token(token_string, token_type_hint)

    def revoke_token(self, token: Token, request) -> None:
        token.revoked_at = context.now()
        db.session.commit()


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return _find_token(token_string, token_type_hint)

    def check_permission(self, token: Token, client: OAuthClient, request) -> bool:
        return token.client_id == client.client_id

    def introspect_token(self, token: Token) -> dict:
        if token.is_revoked() or token.is_expired():
            return {"active": False}
        return {
            "active": True,
            "client_id": token.client_id,
            "scope": token.scope,
            "sub": token.user.username if token.user else None,
            "token_type": "Bearer",
            "iss": current_app.config["ISSUER"],
            "iat": int(token.issued_at.timestamp()),
            "exp": int(token.issued_at.timestamp()) + token.expires_in,
        }


def _find_token(token_string: str, hint: str | None) -> Token | None:
    hashed = digest(token_string)
    columns = [Token.refresh_token_hash, Token.access_token_hash] if hint == "refresh_token" else [Token.access_token_hash, Token.refresh_token_hash]
    for column in columns:
        found = db.session.scalar(select(Token).where(column == hashed))
        if found is not None:
            return found
    return None


class Bearer(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> Token | None:
        return db.session.scalar(select(Token).where(Token.access_token_hash == digest(token_string)))


def init_app(app) -> None:
    """One authorization server and one bearer guard per app (tests build many apps)."""
    app.config.setdefault(
        "OAUTH2_TOKEN_EXPIRES_IN",
        dict.fromkeys(("authorization_code", "refresh_token", "client_credentials"), int(ACCESS_TOKEN_LIFETIME.total_seconds())),
    )
    app.config.setdefault("OAUTH2_REFRESH_TOKEN_GENERATOR", True)  # authlib issues none without it
    server = AuthorizationServer(app, query_client=_query_client, save_token=_save_token)
    server.register_grant(AuthorizationCodeGrant, [S256Challenge(required=True), DirectoryOpenIDCode(require_nonce=False)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    guard = ResourceProtector()
    guard.register_token_validator(Bearer())
    app.extensions["idp.oidc"] = server
    app.extensions["idp.oauth_guard"] = guard


def authorization_server() -> AuthorizationServer:
    return current_app.extensions["idp.oidc"]


def bearer_guard() -> ResourceProtector:
    return current_app.extensions["idp.oauth_guard"]
