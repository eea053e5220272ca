//! Custom fields by name.

use crate::{CustomField, FieldValue, Issue};

/// Read and write an issue's custom fields by name.
pub trait IssueFields {
    /// The value of the custom field `name`, if the issue has it.
    fn custom_field(&self, name: &str) -> Option<&FieldValue>;
    /// The text of the custom field `name`, if it holds text or an option.
    fn custom_text(&self, name: &str) -> Option<&str>;
    /// Set the custom field `name`, adding it if the issue does not have it yet.
    fn set_custom_field(&mut self, name: &str, value: FieldValue);
    /// Remove the custom field `name`; returns its value if it was there.
    fn remove_custom_field(&mut self, name: &str) -> Option<FieldValue>;
}

impl IssueFields for Issue {
    fn custom_field(&self, name: &str) -> Option<&FieldValue> {
        self.custom_fields
            .iter()
            .find(|field| field.name == name)
            .map(|field| &field.value)
    }

    fn custom_text(&self, name: &str) -> Option<&str> {
        match self.custom_field(name)? {
            FieldValue::Text(text) | FieldValue::Option(text) => Some(text),
            _ => None,
        }
    }

    fn set_custom_field(&mut self, name: &str, value: FieldValue) {
        match self
            .custom_fields
            .iter_mut()
            .find(|field| field.name == name)
        {
            Some(field) => field.value = value,
            None => self.custom_fields.push(CustomField {
                name: name.to_string(),
                value,
            }),
        }
    }

    fn remove_custom_field(&mut self, name: &str) -> Option<FieldValue> {
        let index = self
            .custom_fields
            .iter()
            .position(|field| field.name == name)?;
        Some(self.custom_fields.remove(index).value)
    }
}
