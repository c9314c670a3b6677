"""The upload checks themselves (the API tests cannot reach them all: Django's multipart parser
already drops paths from file names)."""

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from apps.core.exceptions import ApplicationError, PayloadTooLarge, UnsupportedMediaType
from apps.documents.uploads import DOCX, HTML, MARKDOWN, PDF, TEXT, inspect_upload


def upload(content: bytes, name: str = "file.txt"):
    return inspect_upload(SimpleUploadedFile(name, content))


@pytest.mark.parametrize(
    "name", ["a\\b.txt", "..\\..\\boot.ini", "bad\x00name.txt", "tab\tname.txt", "line\nbreak.txt"]
)
def test_file_names_with_paths_or_control_characters_are_refused(name):
    with pytest.raises(ApplicationError) as caught:
        upload(b"hello\n", name)
    assert caught.value.code == "invalid_filename"


def test_django_reduces_posix_paths_to_their_last_part_before_we_see_them():
    assert upload(b"hello\n", "../../etc/cron.d/policy.txt").original_filename == "policy.txt"


def test_an_empty_file_is_refused():
    with pytest.raises(ApplicationError) as caught:
        upload(b"", "empty.txt")
    assert caught.value.code == "empty_file"


@override_settings(DOCUMENT_MAX_UPLOAD_BYTES=10)
def test_the_size_limit():
    with pytest.raises(PayloadTooLarge):
        upload(b"x" * 11)


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content, name, media_type",
    [
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n", "report.bin", PDF),
        (_docx(), "letter.docx", DOCX),
        (b"<!DOCTYPE html><html><head><title>t</title></head><body><p>x</p></body></html>", "page.txt", HTML),
        (b"# Title\n\nSome *markdown*.\n", "notes.md", MARKDOWN),
        (b"# Title\n\nSome *markdown*.\n", "notes.txt", TEXT),
        ("Grüße aus Köln\n".encode(), "greeting.txt", TEXT),
    ],
)
def test_media_type_comes_from_the_content(content, name, media_type):
    assert upload(content, name).media_type == media_type


def test_a_zip_with_broken_member_names_is_unsupported_not_a_crash():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("x")
        archive.writestr(info, b"data")
    raw = bytearray(buffer.getvalue())
    # set the UTF-8 flag and corrupt the member name in the central directory
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 8] |= 0x08
    raw[central + 46] = 0xFF
    with pytest.raises(UnsupportedMediaType):
        upload(bytes(raw), "broken.docx")
