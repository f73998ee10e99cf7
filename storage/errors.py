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


def _error(name: str, status: int, message: str) -> type[S3Error]:
    return type(name, (S3Error,), {"status": status, "code": name, "default_message": message})


AccessDenied = _error("AccessDenied", 403, "Access Denied")
InvalidAccessKeyId = _error(
    "InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records."
)
SignatureDoesNotMatch = _error(
    "SignatureDoesNotMatch",
    403,
    "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
)
RequestTimeTooSkewed = _error(
    "RequestTimeTooSkewed", 403, "The difference between the request time and the current time is too large."
)
AuthorizationHeaderMalformed = _error("AuthorizationHeaderMalformed", 400, "The authorization header is malformed.")
AuthorizationQueryParametersError = _error(
    "AuthorizationQueryParametersError", 400, "The authorization query parameters are malformed."
)
XAmzContentSHA256Mismatch = _error(
    "XAmzContentSHA256Mismatch", 400, "The provided 'x-amz-content-sha256' header does not match what was computed."
)
BadDigest = _error("BadDigest", 400, "The Content-MD5 or checksum you specified did not match what we received.")
InvalidDigest = _error("InvalidDigest", 400, "The Content-MD5 or checksum you specified is not valid.")
InvalidArgument = _error("InvalidArgument", 400, "Invalid Argument")
InvalidRequest = _error("InvalidRequest", 400, "Invalid Request")
IncompleteBody = _error(
    "IncompleteBody", 400, "You did not provide the number of bytes specified by the Content-Length."
)
MissingContentLength = _error("MissingContentLength", 411, "You must provide the Content-Length HTTP header.")
EntityTooLarge = _error("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size.")
EntityTooSmall = _error("EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size.")
InsufficientStorage = _error("InsufficientStorage", 507, "Not enough free disk space to store this object.")
NoSuchBucket = _error("NoSuchBucket", 404, "The specified bucket does not exist.")
NoSuchKey = _error("NoSuchKey", 404, "The specified key does not exist.")
NoSuchUpload = _error(
    "NoSuchUpload",
    404,
    "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
)
InvalidPart = _error(
    "InvalidPart", 400, "One or more of the specified parts could not be found or its ETag did not match."
)
InvalidPartOrder = _error("InvalidPartOrder", 400, "The list of parts was not in ascending order.")
InvalidRange = _error("InvalidRange", 416, "The requested range is not satisfiable")
MalformedXML = _error("MalformedXML", 400, "The XML you provided was not well-formed or did not validate.")
KeyTooLongError = _error("KeyTooLongError", 400, "Your key is too long.")
InvalidBucketName = _error("InvalidBucketName", 400, "The specified bucket is not valid.")
MethodNotAllowed = _error("MethodNotAllowed", 405, "The specified method is not allowed against this resource.")
NotImplementedError_ = _error(
    "NotImplemented", 501, "A header or query you provided implies functionality that is not implemented."
)
NotImplementedError_.code = "NotImplemented"
PreconditionFailed = _error("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold.")
InternalError = _error("InternalError", 500, "We encountered an internal error. Please try again.")
RequestTimeout = _error(
    "RequestTimeout",
    400,
    "Your socket connection to the server was not read from or written to within the timeout period.",
)
KeyConflict = _error(
    "InvalidArgument",
    400,
    "The key conflicts with an existing object or prefix (a key cannot be both an object and a folder).",
)
MetadataTooLarge = _error("MetadataTooLarge", 400, "Your metadata headers exceed the maximum allowed metadata size.")
