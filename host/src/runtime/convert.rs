//! Conversions between the host's model (`crate::model`) and the types generated from the
//! WIT. Values move across, so no string is copied.

use super::bindings::types as wit;
use crate::model;

/// A conversion that also works through `Option` and `Vec`, so that records convert field by
/// field with one rule.
pub trait Conv<T> {
    fn conv(self) -> T;
}

macro_rules! same_type {
    ($($ty:ty),*) => {$(
        impl Conv<$ty> for $ty {
            fn conv(self) -> $ty {
                self
            }
        }
    )*};
}
same_type!(String, bool, u64, f64);

impl<A: Conv<B>, B> Conv<Option<B>> for Option<A> {
    fn conv(self) -> Option<B> {
        self.map(Conv::conv)
    }
}

impl<A: Conv<B>, B> Conv<Vec<B>> for Vec<A> {
    fn conv(self) -> Vec<B> {
        self.into_iter().map(Conv::conv).collect()
    }
}

/// Both directions for a record whose fields have the same names on both sides.
macro_rules! both_ways {
    ($name:ident { $($field:ident),* $(,)? }) => {
        impl Conv<wit::$name> for model::$name {
            fn conv(self) -> wit::$name {
                wit::$name { $($field: self.$field.conv()),* }
            }
        }
        impl Conv<model::$name> for wit::$name {
            fn conv(self) -> model::$name {
                model::$name { $($field: self.$field.conv()),* }
            }
        }
    };
}

both_ways!(User {
    id,
    display_name,
    email
});
both_ways!(Comment {
    id,
    author,
    body,
    created,
    updated,
    internal
});
both_ways!(Attachment {
    id,
    file_name,
    mime_type,
    size,
    sha256
});
both_ways!(CustomField { name, value });
both_ways!(Issue {
    key,
    id,
    project,
    issue_type,
    summary,
    description,
    status,
    priority,
    resolution,
    assignee,
    reporter,
    labels,
    components,
    due_date,
    parent_key,
    comments,
    attachments,
    custom_fields,
    created,
    updated,
});

impl Conv<wit::FieldValue> for model::FieldValue {
    fn conv(self) -> wit::FieldValue {
        use model::FieldValue as M;
        match self {
            M::Text(v) => wit::FieldValue::Text(v),
            M::Number(v) => wit::FieldValue::Number(v),
            M::Boolean(v) => wit::FieldValue::Boolean(v),
            M::Date(v) => wit::FieldValue::Date(v),
            M::DateTime(v) => wit::FieldValue::DateTime(v),
            M::User(v) => wit::FieldValue::User(v.conv()),
            M::Option(v) => wit::FieldValue::Option(v),
            M::MultiOption(v) => wit::FieldValue::MultiOption(v),
            M::Null => wit::FieldValue::Null,
        }
    }
}

impl Conv<model::FieldValue> for wit::FieldValue {
    fn conv(self) -> model::FieldValue {
        use model::FieldValue as M;
        match self {
            wit::FieldValue::Text(v) => M::Text(v),
            wit::FieldValue::Number(v) => M::Number(v),
            wit::FieldValue::Boolean(v) => M::Boolean(v),
            wit::FieldValue::Date(v) => M::Date(v),
            wit::FieldValue::DateTime(v) => M::DateTime(v),
            wit::FieldValue::User(v) => M::User(v.conv()),
            wit::FieldValue::Option(v) => M::Option(v),
            wit::FieldValue::MultiOption(v) => M::MultiOption(v),
            wit::FieldValue::Null => M::Null,
        }
    }
}

impl Conv<wit::SyncContext> for model::SyncContext {
    fn conv(self) -> wit::SyncContext {
        wit::SyncContext {
            connection: self.connection,
            local_instance: self.local_instance,
            remote_instance: self.remote_instance,
            direction: match self.direction {
                model::Direction::Bidirectional => wit::Direction::Bidirectional,
                model::Direction::Unidirectional => wit::Direction::Unidirectional,
            },
            first_sync: self.first_sync,
            event_id: self.event_id,
            reason: match self.reason {
                model::SyncReason::LocalChange => wit::SyncReason::LocalChange,
                model::SyncReason::SyncBack => wit::SyncReason::SyncBack,
                model::SyncReason::ManualExalate => wit::SyncReason::ManualExalate,
                model::SyncReason::Retry => wit::SyncReason::Retry,
            },
            hop: self.hop,
            now: self.now,
        }
    }
}
