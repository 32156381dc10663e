//! Reading settings and secrets from the Worker's `Env`.

use worker::Env;
use worker::js_sys::{JSON, Reflect};
use worker::wasm_bindgen::JsValue;

use crate::config::Source;

/// The Worker's environment as a configuration source.
pub struct EnvSource<'a>(pub &'a Env);

/// A binding, variable or secret of the environment, if it is set.
pub fn binding(env: &Env, name: &str) -> Option<JsValue> {
    Reflect::get(env, &JsValue::from_str(name))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

impl EnvSource<'_> {
    fn binding(&self, name: &str) -> Option<JsValue> {
        binding(self.0, name)
    }
}

impl Source for EnvSource<'_> {
    fn var_json(&self, name: &str) -> Option<String> {
        // Object variables arrive as JS objects, string ones as strings: both as JSON text.
        JSON::stringify(&self.binding(name)?).ok()?.as_string()
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.binding(name)?.as_string()
    }
}
