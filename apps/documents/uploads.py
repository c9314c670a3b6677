"""Checks on an uploaded file before anything is stored: size, name, media type detected from the
content (libmagic through python-magic), SHA-256."""

from __future__ import annotations

import hashlib
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import magic
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from apps.core.exceptions import ApplicationError, PayloadTooLarge, UnsupportedMediaType

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
SUPPORTED_MEDIA_TYPES = (PDF, DOCX, HTML, MARKDOWN, TEXT)
MARKDOWN_SUFFIXES = {".md", ".markdown"}


@dataclass(frozen=True)
class UploadInfo:
    original_filename: str
    media_type: str
    size: int
    sha256: str


def _clean_filename(name: str | None) -> str:
    name = unicodedata.normalize("NFC", name or "").strip()
    if not name:
        raise ApplicationError("The file needs a name.", code="invalid_filename")
    if "/" in name or "\\" in name or name in (".", "..") or any(ord(c) < 32 for c in name):
        raise ApplicationError(
            f"File name {name!r} must be a plain name, without a path or control characters.",
            code="invalid_filename",
        )
    if len(name) > 255:
        raise ApplicationError("File names are limited to 255 characters.", code="invalid_filename")
    return name


def _is_docx(head_and_file: UploadedFile) -> bool:
    head_and_file.seek(0)
    try:
        with zipfile.ZipFile(head_and_file) as archive:
            return "word/document.xml" in archive.namelist()
    except Exception:  # any malformed archive (bad names, truncation, bombs) is simply not a DOCX
        return False
    finally:
        head_and_file.seek(0)


def detect_media_type(upload: UploadedFile, filename: str) -> str:
    upload.seek(0)
    head = upload.read(8192)
    upload.seek(0)
    detected = magic.from_buffer(head, mime=True)
    if detected == PDF:
        return PDF
    if detected in (DOCX, "application/zip", "application/octet-stream") and _is_docx(upload):
        return DOCX
    if detected in (DOCX, "application/zip"):
        # Said plainly: "application/zip is not supported" would not tell the user what is wrong,
        # and "…wordprocessingml.document is not supported" would contradict the list below.
        raise UnsupportedMediaType(
            f"{filename!r} is a zip archive but not a readable Word document (it is damaged, truncated "
            "or has no word/document.xml): upload PDF, DOCX, HTML, Markdown or plain text.",
            extra={"detected": detected, "supported": list(SUPPORTED_MEDIA_TYPES)},
        )
    if detected == HTML:
        return HTML
    if detected.startswith("text/"):
        if PurePosixPath(filename).suffix.lower() in MARKDOWN_SUFFIXES:
            return MARKDOWN
        return TEXT
    raise UnsupportedMediaType(
        f"The content of {filename!r} is {detected}, which is not supported: upload PDF, DOCX, HTML, "
        "Markdown or plain text.",
        extra={"detected": detected, "supported": list(SUPPORTED_MEDIA_TYPES)},
    )


def inspect_upload(upload: UploadedFile) -> UploadInfo:
    filename = _clean_filename(upload.name)
    size = upload.size
    if size is None:  # Django's upload handlers always measure a file; an UploadedFile built by hand may not
        raise ApplicationError(f"The size of {filename!r} is unknown.", code="invalid_file")
    limit = settings.DOCUMENT_MAX_UPLOAD_BYTES
    if size > limit:
        raise PayloadTooLarge(
            f"{filename!r} is {size} bytes; the limit is {limit} bytes.",
            extra={"size": size, "limit": limit},
        )
    if size == 0:
        raise ApplicationError(f"{filename!r} is empty.", code="empty_file")
    media_type = detect_media_type(upload, filename)
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return UploadInfo(original_filename=filename, media_type=media_type, size=size, sha256=digest.hexdigest())


__all__ = ["SUPPORTED_MEDIA_TYPES", "UploadInfo", "inspect_upload"]
