//! The WebDAV front end's one table: the view's error classes as HTTP statuses.

use hyper::StatusCode;

use crate::error::ErrorClass;

/// The status a response carries for an error of class `class`. Damage of any kind is a 500:
/// a client gets an error, never wrong bytes.
pub(super) fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        // A file of a snapshot forgotten meanwhile is gone, as far as HTTP can say.
        ErrorClass::NotFound | ErrorClass::NotADirectory | ErrorClass::Stale => StatusCode::NOT_FOUND,
        ErrorClass::IsADirectory | ErrorClass::NotASymlink | ErrorClass::NotAFile | ErrorClass::Invalid => {
            StatusCode::BAD_REQUEST
        }
        ErrorClass::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorClass::Busy => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::Damaged | ErrorClass::Io => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_its_status() {
        assert_eq!(status_of(ErrorClass::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorClass::Stale), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorClass::NotADirectory), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorClass::IsADirectory), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(ErrorClass::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(status_of(ErrorClass::Busy), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status_of(ErrorClass::Damaged), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status_of(ErrorClass::Io), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
