"""Who may talk to the server, and what every error looks like: installed into MONAI Label's FastAPI app.

MONAI Label 0.8.5 answers any Host header, reflects any Origin with credentials, and turns
unexpected errors into a bare HTTP 500. This module, installed once when the server starts
(``install``), adds in front of every endpoint:

- a Host check: ``localhost``, ``127.0.0.1``, ``::1`` and the names in ``--conf allowed_hosts``
  (a web page on another name cannot reach the server through DNS rebinding);
- an Origin check: a browser request from another origin than the server's own is refused
  unless that origin is in ``--conf cors_origins`` (CORS answers only those, without credentials);
- an optional access token (``--conf auth_token`` or ``$ELASTIXMONAILABEL_TOKEN``) that every
  request must send as ``Authorization: Bearer <token>``;
- a request size limit (``--conf max_upload_mb``, 1024 by default);
- error handlers: every error is a JSON ``{"detail": message}`` with a 4xx for the client's
  mistakes and a 5xx naming the problem otherwise (``status_and_message``: the app's own
  errors, lib.http.errors, carry their status; the core's, MONAI Label's and any other error
  get theirs here);
- the app's own versions of the endpoints listed in lib.http.routes (datastore, infer, train,
  model and session uploads), and no DICOMweb proxy,
  OHIF viewer, whole-slide inference or app reload (this app uses none of them).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, HTTPException
from fastapi.middleware import Middleware
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse

from ElastixMonaiLabelLib.client.rest import TOKEN_ENVIRONMENT_VARIABLE
from ElastixMonaiLabelLib.errors import InputError, RegistrationError

from ..configs import AppSettings
from . import routes as safe_routes
from .errors import TooLarge

logger = logging.getLogger(__name__)

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class GuardConfig:
    """The server's access rules (``--conf`` auth_token, allowed_hosts, cors_origins, max_upload_mb)."""

    token: str | None = None
    allowed_hosts: frozenset[str] = field(default_factory=lambda: frozenset(LOCAL_HOSTS))
    any_host: bool = False
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 2**20

    @classmethod
    def from_settings(cls, settings: AppSettings) -> GuardConfig:
        """The rules the app's settings give; a token beside MONAI Label's own authentication is refused
        (both use the Authorization header)."""
        from monailabel.config import settings as monai_label_settings

        if settings.auth_token and monai_label_settings.MONAI_LABEL_AUTH_ENABLE:
            raise ValueError("--conf auth_token (or $ELASTIXMONAILABEL_TOKEN) and MONAI Label's own authentication "
                             "(MONAI_LABEL_AUTH_ENABLE) both use the Authorization header: choose one")
        hosts = settings.allowed_hosts
        return cls(token=settings.auth_token, allowed_hosts=frozenset([*LOCAL_HOSTS, *[n for n in hosts if n != "*"]]),
                   any_host="*" in hosts, cors_origins=settings.cors_origins,
                   max_body_bytes=int(settings.max_upload_mb * 2**20))


def _refusal(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _host_name(host_header: str) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '::1', 'Example.org.' -> 'example.org'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") == 1 else host.rstrip(".")


class RequestGuard:
    """ASGI middleware: Host, Origin, token and size checks before anything else runs."""

    def __init__(self, app, config: GuardConfig) -> None:
        self.app = app
        self.config = config

    def _problem(self, scope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        host_header = headers.get("host", "")
        if not self.config.any_host and _host_name(host_header) not in self.config.allowed_hosts:
            return _refusal(400, f"this server does not answer to host {host_header[:100]!r} (allowed: "
                                 f"{', '.join(sorted(self.config.allowed_hosts))}; more with --conf allowed_hosts)")
        origin = headers.get("origin")
        if origin is not None:
            own = origin.lower() in (f"http://{host_header.lower()}", f"https://{host_header.lower()}")
            if not own and origin.rstrip("/") not in self.config.cors_origins:
                return _refusal(403, f"cross-origin request from {origin[:100]!r} refused (allowed origins: this server's "
                                     "own" + "".join(f", {o}" for o in self.config.cors_origins) + "; more with --conf cors_origins)")
        preflight = scope["method"] == "OPTIONS" and origin is not None and "access-control-request-method" in headers
        if self.config.token and not preflight:
            scheme, _, value = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.config.token.encode()):
                return _refusal(401, "this server needs its access token: send 'Authorization: Bearer <token>' (the project's "
                                     f"client sends ${TOKEN_ENVIRONMENT_VARIABLE})", {"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _refusal(400, f"invalid Content-Length {length[:30]!r}")
            if int(length) > self.config.max_body_bytes:
                return _refusal(413, self._too_large(f"request body of {int(length) / 2**20:.1f} MB"))
        return None

    def _too_large(self, what: str) -> str:
        return f"{what} is more than this server's limit of {self.config.max_body_bytes / 2**20:g} MB (--conf max_upload_mb)"

    def _limited(self, receive):
        """``receive`` that stops a body sent without Content-Length (chunked) at the limit."""
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.config.max_body_bytes:
                    raise TooLarge(self._too_large("request body"))
            return message

        return limited

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            problem = self._problem(scope) if scope["type"] == "http" else _refusal(403, "no websockets here")
            if problem is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await problem(scope, receive, send)
                return
            receive = self._limited(receive)
        await self.app(scope, receive, send)


# -- errors -----------------------------------------------------------------------------------

def _root_cause(error: BaseException) -> BaseException:
    """The first error in a chain that says what went wrong (MONAI wraps transform errors in
    'applying transform <...>' RuntimeErrors)."""
    from monailabel.interfaces.exception import MONAILabelException

    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (HTTPException, InputError, RegistrationError, MONAILabelException, json.JSONDecodeError)):
            return current
        current = current.__cause__ or current.__context__
    return error


def status_and_message(error: BaseException) -> tuple[int, str]:
    """The HTTP status and message for any error raised while answering a request: the app's errors
    (lib.http.errors) and FastAPI's with their own status, the core's ``InputError`` and ``RegistrationError``
    422, MONAI Label's 404/422, a parameter that is not JSON 400, anything else 500."""
    from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException, MONAILabelError, MONAILabelException

    cause = _root_cause(error)
    if isinstance(cause, HTTPException):
        return cause.status_code, str(cause.detail)
    if isinstance(cause, InputError):
        return 422, str(cause)
    if isinstance(cause, RegistrationError):
        return 422, f"registration failed: {cause}"
    if isinstance(cause, json.JSONDecodeError):
        return 400, f"a request parameter is not valid JSON ({cause})"
    if isinstance(cause, (ImageNotFoundException, LabelNotFoundException)):
        return 404, cause.msg
    if isinstance(cause, MONAILabelException):
        return (422 if cause.error == MONAILabelError.INVALID_INPUT else 500), cause.msg
    text = str(error).strip().splitlines()
    return 500, f"internal error: {type(error).__name__}" + (f": {text[0][:300]}" if text else "") + " (see the server log)"


async def _error_response(request: Request, error: Exception) -> JSONResponse:
    status, message = status_and_message(error)
    if status >= 500:
        logger.error(f"{request.method} {request.url.path}: {message}", exc_info=error)
    return _refusal(status, message)


# -- installation -----------------------------------------------------------------------------

def _routes_to_replace(prefix: str) -> dict[tuple[str, str], Callable]:
    """(path, method) -> the app's handler for it."""
    r = safe_routes
    return {
        (f"{prefix}/datastore/image", "PUT"): r.add_image,
        (f"{prefix}/datastore/", "PUT"): r.add_image,
        (f"{prefix}/datastore/image", "DELETE"): r.remove_image,
        (f"{prefix}/datastore/", "DELETE"): r.remove_image,
        (f"{prefix}/datastore/label", "PUT"): r.save_label,
        (f"{prefix}/datastore/label", "DELETE"): r.remove_label,
        (f"{prefix}/datastore/image/info", "PUT"): r.update_image_info,
        (f"{prefix}/datastore/label/info", "PUT"): r.update_label_info,
        (f"{prefix}/datastore/updatelabelinfo", "PUT"): r.update_label_info_deprecated,
        (f"{prefix}/infer/{{model}}", "POST"): r.run_inference,
        (f"{prefix}/train/{{model}}", "POST"): r.run_training,
        (f"{prefix}/model/{{model}}", "PUT"): r.update_model,
        (f"{prefix}/session/", "PUT"): r.create_session,
        (f"{prefix}/session/{{session_id}}", "GET"): r.get_session,
        (f"{prefix}/session/{{session_id}}", "DELETE"): r.remove_session,
    }


def _not_offered(request: Request) -> JSONResponse:
    return _refusal(404, f"{request.url.path} is not offered by this app (no DICOMweb proxy, OHIF viewer, whole-slide "
                         "inference or app reload)")


DISABLED_PATHS = ("/proxy/{rest:path}", "/ohif/{rest:path}", "/infer/wsi/{model}", "/infer/wsi_v2/{model}", "/reload")


def install(fastapi_app: FastAPI, config: GuardConfig, prefix: str = "") -> None:
    """Put the guard, the CORS rules, the error handlers and the app's endpoints into MONAI Label's FastAPI app."""
    # The app's handlers go first in the router: the first route that fully matches a request answers it,
    # so MONAI Label's own routes for these paths and methods are never reached.
    routes = fastapi_app.router.routes
    first_new = len(routes)
    for (path, method), handler in _routes_to_replace(prefix).items():
        fastapi_app.add_api_route(path, handler, methods=[method], tags=[path.split("/")[1 if not prefix else 2].title()],
                                  description=handler.__doc__ or "")
    for path in DISABLED_PATHS:
        fastapi_app.add_route(prefix + path if path != "/reload" else path, _not_offered,
                              methods=["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"], include_in_schema=False)
    ours = routes[first_new:]
    del routes[first_new:]
    routes[:0] = ours
    from monailabel.interfaces.exception import MONAILabelException

    # FastAPI's own handler keeps answering HTTPException (with its headers). These errors are
    # answered inside the app; Exception, the rest, by the outermost handler (500, logged).
    for kind in (MONAILabelException, InputError, RegistrationError, json.JSONDecodeError, RuntimeError, ValueError,
                 TypeError, LookupError, AttributeError, AssertionError, OSError, Exception):
        fastapi_app.add_exception_handler(kind, _error_response)
    fastapi_app.user_middleware = [
        Middleware(RequestGuard, config=config),
        Middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_credentials=False,
                   allow_methods=["GET", "POST", "PUT", "DELETE", "HEAD"], allow_headers=["Authorization", "Content-Type"]),
    ]
    # MONAI Label built its stack at the first (lifespan) call: build it again with the above.
    fastapi_app.middleware_stack = fastapi_app.build_middleware_stack()
    fastapi_app.openapi_schema = None
    logger.info(f"access: hosts {', '.join(sorted(config.allowed_hosts)) if not config.any_host else 'any'}; "
                f"CORS origins: {', '.join(config.cors_origins) or 'none (same origin only)'}; "
                f"token: {'required' if config.token else 'off'}; request limit {config.max_body_bytes / 2**20:g} MB")
