"""S3 errors: the codes and HTTP statuses stock clients act on (retry, re-sign, give up)."""

from __future__ import annotations


class S3Error(Exception):
    """An error answered as S3 XML: `<Error><Code>code</Code><Message>...</Message></Error>`.

    `extra` adds S3's diagnostic elements (e.g. `RequestTime`, `ServerTime` for a skewed
    clock), which clients print; never put secrets in it.
    """

    status = 400
    code = "InvalidRequest"
    default_message = "Invalid request."

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None, **extra: str) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.extra = extra
        self.headers = headers or {}


class AccessDenied(S3Error):
    status = 403
    code = "AccessDenied"
    default_message = "Access Denied"


class InvalidAccessKeyId(S3Error):
    status = 403
    code = "InvalidAccessKeyId"
    default_message = "The AWS Access Key Id you provided does not exist in our records."


class SignatureDoesNotMatch(S3Error):
    status = 403
    code = "SignatureDoesNotMatch"
    default_message = "The request signature we calculated does not match the signature you provided. Check your key and signing method."


class RequestTimeTooSkewed(S3Error):
    status = 403
    code = "RequestTimeTooSkewed"
    default_message = "The difference between the request time and the current time is too large."


class AuthorizationHeaderMalformed(S3Error):
    status = 400
    code = "AuthorizationHeaderMalformed"
    default_message = "The authorization header is malformed."


class AuthorizationQueryParametersError(S3Error):
    status = 400
    code = "AuthorizationQueryParametersError"
    default_message = "The authorization query parameters are malformed."


class XAmzContentSHA256Mismatch(S3Error):
    status = 400
    code = "XAmzContentSHA256Mismatch"
    default_message = "The provided 'x-amz-content-sha256' header does not match what was computed."


class BadDigest(S3Error):
    status = 400
    code = "BadDigest"
    default_message = "The Content-MD5 or checksum you specified did not match what we received."


class InvalidDigest(S3Error):
    status = 400
    code = "InvalidDigest"
    default_message = "The Content-MD5 or checksum you specified is not valid."


class InvalidArgument(S3Error):
    status = 400
    code = "InvalidArgument"
    default_message = "Invalid Argument"


class InvalidURI(S3Error):
    status = 400
    code = "InvalidURI"
    default_message = "Couldn't parse the specified URI."


class InvalidRequest(S3Error):
    status = 400
    code = "InvalidRequest"
    default_message = "Invalid Request"


class IncompleteBody(S3Error):
    status = 400
    code = "IncompleteBody"
    default_message = "You did not provide the number of bytes specified by the Content-Length."


class MissingContentLength(S3Error):
    status = 411
    code = "MissingContentLength"
    default_message = "You must provide the Content-Length HTTP header."


class EntityTooLarge(S3Error):
    status = 400
    code = "EntityTooLarge"
    default_message = "Your proposed upload exceeds the maximum allowed size."


class EntityTooSmall(S3Error):
    status = 400
    code = "EntityTooSmall"
    default_message = "Your proposed upload is smaller than the minimum allowed object size."


class InsufficientStorage(S3Error):
    status = 507
    code = "InsufficientStorage"
    default_message = "Not enough free disk space to store this object."


class NoSuchBucket(S3Error):
    status = 404
    code = "NoSuchBucket"
    default_message = "The specified bucket does not exist."


class NoSuchKey(S3Error):
    status = 404
    code = "NoSuchKey"
    default_message = "The specified key does not exist."


class NoSuchUpload(S3Error):
    status = 404
    code = "NoSuchUpload"
    default_message = "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."


class InvalidPart(S3Error):
    status = 400
    code = "InvalidPart"
    default_message = "One or more of the specified parts could not be found or its ETag did not match."


class InvalidPartOrder(S3Error):
    status = 400
    code = "InvalidPartOrder"
    default_message = "The list of parts was not in ascending order."


class InvalidRange(S3Error):
    status = 416
    code = "InvalidRange"
    default_message = "The requested range is not satisfiable"


class InvalidPartNumber(S3Error):
    status = 416
    code = "InvalidPartNumber"
    default_message = "The requested partnumber is not satisfiable"


class MalformedXML(S3Error):
    status = 400
    code = "MalformedXML"
    default_message = "The XML you provided was not well-formed or did not validate."


class KeyTooLongError(S3Error):
    status = 400
    code = "KeyTooLongError"
    default_message = "Your key is too long."


class InvalidBucketName(S3Error):
    status = 400
    code = "InvalidBucketName"
    default_message = "The specified bucket is not valid."


class MethodNotAllowed(S3Error):
    status = 405
    code = "MethodNotAllowed"
    default_message = "The specified method is not allowed against this resource."


class NotImplementedError_(S3Error):
    """S3's NotImplemented (the class name keeps the built-in NotImplementedError unshadowed)."""

    status = 501
    code = "NotImplemented"
    default_message = "A header or query you provided implies functionality that is not implemented."


class PreconditionFailed(S3Error):
    status = 412
    code = "PreconditionFailed"
    default_message = "At least one of the pre-conditions you specified did not hold."


class InternalError(S3Error):
    status = 500
    code = "InternalError"
    default_message = "We encountered an internal error. Please try again."


class RequestTimeout(S3Error):
    status = 400
    code = "RequestTimeout"
    default_message = "Your socket connection to the server was not read from or written to within the timeout period."


class KeyConflict(S3Error):
    """A key that is both an object and a folder; S3's code for it is InvalidArgument."""

    status = 400
    code = "InvalidArgument"
    default_message = (
        "The key conflicts with an existing object or prefix (a key cannot be both an object and a folder)."
    )


class MetadataTooLarge(S3Error):
    status = 400
    code = "MetadataTooLarge"
    default_message = "Your metadata headers exceed the maximum allowed metadata size."
