//! An HTTP function's public route as the host builds and matches it: `{routePrefix}/{route}`, an ASP.NET route
//! template with literal segments, parameters `{id}`, optional ones `{id?}`, defaults `{id=1}`, catch-alls
//! `{*rest}` and the common inline constraints (`{id:int}`, `{id:int?}`, `alpha`, `bool`, `guid`, `long`,
//! `double`, `min(n)`, `max(n)`, `range(a,b)`, `minlength(n)`, `maxlength(n)`, `length(n)`), plus the trigger's
//! `methods`. Anything else in a template (complex segments such as `{a}.{b}`, `regex`) makes the stand-in refuse
//! the app, rather than guess.
//!
//! Host: Microsoft.Azure.WebJobs.Extensions.Http's route builder (`WebJobsRouteBuilder.MapFunctionHttpRoute`, an
//! ASP.NET `Route` with an `HttpMethodRouteConstraint`): a method the trigger does not list fails the route's
//! constraint like a path that does not match, so the answer is 404, never 405. Literals match in any case; a
//! trailing slash is ignored; values are the path's segments percent-decoded (Kestrel keeps `%2F`). The order in
//! which overlapping routes are tried is ASP.NET's inbound precedence (literals before constrained parameters before
//! parameters before catch-alls); that the host sorts its function routes so was not confirmed in its source.

use serde_json::Value;

use super::app::FunctionInfo;

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Parameter {
        name: String,
        optional: bool,
        catch_all: bool,
        default: Option<String>,
        constraints: Vec<String>,
    },
}

/// One function's route.
#[derive(Debug, Clone)]
pub struct Route {
    pub function: String,
    /// The whole template, prefix included, as the host would log it.
    pub template: String,
    segments: Vec<Segment>,
    /// Upper-case methods; empty for every method.
    methods: Vec<String>,
}

/// A match: the function and its route values, `None` for an optional parameter that was not given.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    pub function: String,
    pub values: Vec<(String, Option<String>)>,
}

impl Route {
    /// The route of an HTTP-triggered function: the trigger's `route` (the function's name when absent) under the
    /// prefix.
    pub fn of(function: &FunctionInfo, prefix: &str) -> Route {
        let trigger = function
            .http_trigger()
            .unwrap_or_else(|| panic!("{} has no httpTrigger", function.name));
        let route = trigger
            .property("route")
            .filter(|r| !r.is_empty())
            .unwrap_or(&function.name)
            .trim_matches('/');
        let template = [prefix, route]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        let methods = match trigger.properties.get("methods") {
            Some(Value::Array(methods)) => methods
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_uppercase)
                .collect(),
            _ => Vec::new(),
        };
        Route {
            function: function.name.clone(),
            segments: parse(&template).unwrap_or_else(|e| panic!("{}: route {template:?}: {e}", function.name)),
            template,
            methods,
        }
    }

    /// Every route of the app's HTTP functions, in the order they are tried.
    pub fn all(functions: impl IntoIterator<Item = FunctionInfo>, prefix: &str) -> Vec<Route> {
        let mut routes: Vec<Route> = functions
            .into_iter()
            .filter(|f| f.http_trigger().is_some())
            .map(|f| Route::of(&f, prefix))
            .collect();
        routes.sort_by(|a, b| {
            (a.precedence(), &a.template, &a.function).cmp(&(b.precedence(), &b.template, &b.function))
        });
        routes
    }

    /// ASP.NET's inbound precedence, one digit a segment: lower is tried first.
    fn precedence(&self) -> Vec<u8> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 1,
                Segment::Parameter { catch_all: true, .. } => 5,
                Segment::Parameter { constraints, .. } if !constraints.is_empty() => 3,
                Segment::Parameter { .. } => 4,
            })
            .collect()
    }

    /// The route values when `method` and `path` (raw, percent-encoded, without the query) match.
    pub fn matches(&self, method: &str, path: &str) -> Option<Matched> {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            return None;
        }
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let given: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        let mut values = Vec::new();
        let mut next = 0;
        for segment in &self.segments {
            match segment {
                Segment::Literal(literal) => {
                    let part = given.get(next)?;
                    if !decode(part).eq_ignore_ascii_case(literal) {
                        return None;
                    }
                    next += 1;
                }
                Segment::Parameter {
                    name,
                    catch_all: true,
                    default,
                    ..
                } => {
                    let rest: Vec<String> = given[next.min(given.len())..].iter().map(|p| decode(p)).collect();
                    next = given.len();
                    let value = Some(rest.join("/")).filter(|v| !v.is_empty()).or(default.clone());
                    values.push((name.clone(), value));
                }
                Segment::Parameter {
                    name,
                    optional,
                    default,
                    constraints,
                    ..
                } => match given.get(next) {
                    Some(part) if !part.is_empty() => {
                        let value = decode(part);
                        if !constraints.iter().all(|c| satisfies(c, &value)) {
                            return None;
                        }
                        values.push((name.clone(), Some(value)));
                        next += 1;
                    }
                    Some(_) => return None,
                    None if *optional || default.is_some() => values.push((name.clone(), default.clone())),
                    None => return None,
                },
            }
        }
        (next == given.len()).then(|| Matched {
            function: self.function.clone(),
            values,
        })
    }
}

/// Parses a route template; an error names what the stand-in does not model.
fn parse(template: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    for part in template.split('/').filter(|p| !p.is_empty()) {
        let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
            if part.contains(['{', '}']) {
                return Err(format!("complex segment {part:?} is not modeled"));
            }
            segments.push(Segment::Literal(part.to_owned()));
            continue;
        };
        let (catch_all, inner) = match inner.strip_prefix('*') {
            Some(rest) => (true, rest.trim_start_matches('*')),
            None => (false, inner),
        };
        let (inner, default) = match inner.split_once('=') {
            Some((inner, default)) => (inner, Some(default.to_owned())),
            None => (inner, None),
        };
        let (inner, optional) = match inner.strip_suffix('?') {
            Some(inner) => (inner, true),
            None => (inner, false),
        };
        let mut pieces = inner.split(':');
        let name = pieces.next().unwrap_or_default().to_owned();
        let constraints: Vec<String> = pieces.map(str::to_owned).collect();
        for constraint in &constraints {
            if !known_constraint(constraint) {
                return Err(format!("constraint {constraint:?} is not modeled"));
            }
        }
        segments.push(Segment::Parameter {
            name,
            optional,
            catch_all,
            default,
            constraints,
        });
    }
    Ok(segments)
}

fn known_constraint(constraint: &str) -> bool {
    let name = constraint.split('(').next().unwrap_or_default().to_ascii_lowercase();
    matches!(
        name.as_str(),
        "int"
            | "long"
            | "bool"
            | "guid"
            | "alpha"
            | "double"
            | "decimal"
            | "float"
            | "min"
            | "max"
            | "range"
            | "minlength"
            | "maxlength"
            | "length"
    )
}

/// ASP.NET's inline constraints, with invariant-culture parsing.
fn satisfies(constraint: &str, value: &str) -> bool {
    let (name, args) = match constraint.split_once('(') {
        Some((name, args)) => (name, args.trim_end_matches(')')),
        None => (constraint, ""),
    };
    let numbers: Vec<i64> = args.split(',').filter_map(|a| a.trim().parse().ok()).collect();
    let number = value.parse::<i64>().ok();
    let length = value.chars().count() as i64;
    match name.to_ascii_lowercase().as_str() {
        "int" => value.parse::<i32>().is_ok(),
        "long" => number.is_some(),
        "bool" => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
        "alpha" => !value.is_empty() && value.chars().all(|c| c.is_ascii_alphabetic()),
        "double" | "decimal" | "float" => value.parse::<f64>().is_ok_and(f64::is_finite),
        "guid" => is_guid(value),
        "min" => number.is_some_and(|n| n >= numbers[0]),
        "max" => number.is_some_and(|n| n <= numbers[0]),
        "range" => number.is_some_and(|n| n >= numbers[0] && n <= numbers[1]),
        "minlength" => length >= numbers[0],
        "maxlength" => length <= numbers[0],
        "length" if numbers.len() == 2 => length >= numbers[0] && length <= numbers[1],
        "length" => length == numbers[0],
        _ => false,
    }
}

/// `Guid.TryParse`'s common forms: 32 digits, hyphenated, in braces or parentheses.
fn is_guid(value: &str) -> bool {
    let inner = value
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
        .or_else(|| value.strip_prefix('(').and_then(|v| v.strip_suffix(')')))
        .unwrap_or(value);
    let groups: Vec<&str> = inner.split('-').collect();
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    match groups.as_slice() {
        [all] => all.len() == 32 && hex(all),
        [a, b, c, d, e] => {
            [a.len(), b.len(), c.len(), d.len(), e.len()] == [8, 4, 4, 4, 12] && groups.iter().all(|g| hex(g))
        }
        _ => false,
    }
}

/// A path segment as Kestrel hands it to routing: percent-decoded, except `%2F`, which stays as it came.
pub fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| segment.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|b| *b != b'/');
        match escape {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
