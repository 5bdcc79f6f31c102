//! Paging of the list operation: offset/limit with a default and a maximum
//! page size, or an `after_id` cursor (fast on big tables).

/// Page-size policy (from configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// Used when the client sends limit 0 / no limit.
    pub default: u64,
    /// Larger limits are clamped to this.
    pub max: u64,
}

impl Default for PageLimits {
    fn default() -> Self {
        Self {
            default: 50,
            max: 1000,
        }
    }
}

/// A resolved page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to skip (0 when a cursor is used).
    pub offset: i64,
    /// Rows to return, 1..=max.
    pub limit: i64,
    /// Only ids greater than this.
    pub after_id: Option<i64>,
}

impl Page {
    /// Resolves a client request. `after_id` wins over `offset` (a cursor
    /// does not skip rows). Never fails: out-of-range values are clamped.
    pub fn resolve(offset: u64, limit: u64, after_id: Option<u64>, limits: PageLimits) -> Self {
        let max = limits.max.max(1);
        let limit = if limit == 0 {
            limits.default.clamp(1, max)
        } else {
            limit.min(max)
        };
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        match after_id {
            Some(a) => Page {
                offset: 0,
                limit: clamp(limit),
                after_id: Some(clamp(a)),
            },
            None => Page {
                offset: clamp(offset),
                limit: clamp(limit),
                after_id: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the default and maximum page sizes apply and the cursor disables offset.
    #[test]
    fn resolves() {
        let l = PageLimits {
            default: 10,
            max: 100,
        };
        assert_eq!(
            Page::resolve(5, 0, None, l),
            Page {
                offset: 5,
                limit: 10,
                after_id: None
            }
        );
        assert_eq!(Page::resolve(0, 1000, None, l).limit, 100);
        assert_eq!(
            Page::resolve(5, 3, Some(9), l),
            Page {
                offset: 0,
                limit: 3,
                after_id: Some(9)
            }
        );
        assert_eq!(Page::resolve(u64::MAX, 1, None, l).offset, i64::MAX);
    }
}
