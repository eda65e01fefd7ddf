//! The read-only guard for a push query (`push.<name>.query`) on the warehouses that have no
//! read-only transaction to run it in (BigQuery, Snowflake; SQLite and Postgres refuse writes
//! in the database itself). The query is parsed with `sqlparser` in the warehouse's dialect
//! and accepted only when it is exactly one query statement (`SELECT`, `WITH … SELECT`, set
//! operations of them, `VALUES`) holding no statement of another kind anywhere (a data-modifying
//! CTE) and no `SELECT … INTO`. Anything else, or text that does not parse, is refused before
//! anything reaches the warehouse.
//!
//! The check is by syntax: it cannot see what a function the query calls does (a Snowflake
//! `SYSTEM$` function, a user-defined function), so hsync's role should still hold only the
//! privileges it needs.

use std::ops::ControlFlow;

use sqlparser::ast::{Select, Statement, Visit, Visitor};
use sqlparser::dialect::{BigQueryDialect, Dialect, GenericDialect, SnowflakeDialect};
use sqlparser::parser::Parser;

use super::Error;
use crate::config::DestinationKind;

/// Refuses `query` unless it is a single read-only query in `kind`'s dialect.
pub(crate) fn check(kind: DestinationKind, query: &str) -> Result<(), Error> {
    let dialect: &dyn Dialect = match kind {
        DestinationKind::BigQuery => &BigQueryDialect {},
        DestinationKind::Snowflake => &SnowflakeDialect {},
        _ => &GenericDialect {},
    };
    match refusal(dialect, query) {
        None => Ok(()),
        Some(why) => Err(Error::Query {
            kind,
            detail: format!(
                "{why}; only a single SELECT (or WITH … SELECT) is allowed, since {kind} has no read-only \
                 transaction to run it in"
            ),
        }),
    }
}

/// Why `query` is refused, or `None` when it is one read-only query.
fn refusal(dialect: &dyn Dialect, query: &str) -> Option<String> {
    let statements = match Parser::parse_sql(dialect, query) {
        Ok(statements) => statements,
        Err(e) => return Some(format!("the query does not parse ({e})")),
    };
    let statement = match statements.as_slice() {
        [] => return Some("the query is empty".to_owned()),
        [one] => one,
        several => return Some(format!("the query holds {} statements", several.len())),
    };
    if !matches!(statement, Statement::Query(_)) {
        return Some(format!("the query is {} statement", kind_of(statement)));
    }
    match statement.visit(&mut Writes { depth: 0 }) {
        ControlFlow::Continue(()) => None,
        ControlFlow::Break(why) => Some(why),
    }
}

/// The statement's leading keyword (`a DELETE`, `an INSERT`; with the object for `CREATE`,
/// `ALTER` and `DROP`: `a CREATE TABLE`), never its values.
fn kind_of(statement: &Statement) -> String {
    let text = statement.to_string();
    let keyword = |w: &&str| !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    let mut words = text.split_whitespace().take_while(keyword);
    let words = match words.next() {
        None => "another kind of".to_owned(),
        Some(first @ ("CREATE" | "ALTER" | "DROP")) => match words.next() {
            Some(object) => format!("{first} {object}"),
            None => first.to_owned(),
        },
        Some(first) => first.to_owned(),
    };
    let article = if words.starts_with(['A', 'E', 'I', 'O', 'U', 'a']) { "an" } else { "a" };
    format!("{article} {words}")
}

/// Finds a statement inside the query (a data-modifying CTE or subquery) or a `SELECT … INTO`.
struct Writes {
    depth: usize,
}

impl Visitor for Writes {
    type Break = String;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<String> {
        self.depth += 1;
        if self.depth > 1 {
            return ControlFlow::Break(format!("the query holds {} statement inside it", kind_of(statement)));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, _statement: &Statement) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<String> {
        if select.into.is_some() {
            return ControlFlow::Break("the query is a SELECT … INTO, which writes a table".to_owned());
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIALECTS: [DestinationKind; 2] = [DestinationKind::BigQuery, DestinationKind::Snowflake];

    fn refused(kind: DestinationKind, query: &str) -> String {
        match check(kind, query) {
            Ok(()) => panic!("{kind}: {query:?} was accepted"),
            Err(e @ Error::Query { .. }) => {
                let text = e.to_string();
                assert!(text.contains("only a single SELECT"), "{text}");
                text
            }
            Err(other) => panic!("{kind}: {query:?} gave {other:?}"),
        }
    }

    #[test]
    fn a_select_is_accepted() {
        for kind in DIALECTS {
            for query in [
                "select email, score as lead_score from lead_scores order by email",
                "SELECT 1;",
                "  select * from contacts where id in (select id from deals) limit 10  ",
            ] {
                assert!(check(kind, query).is_ok(), "{kind}: {query}");
            }
        }
        assert!(check(DestinationKind::BigQuery, "select * from `proj.ds.contacts`").is_ok());
        assert!(check(DestinationKind::Snowflake, "select \"email\" from \"contacts\"").is_ok());
    }

    #[test]
    fn with_and_set_operations_are_accepted() {
        for kind in DIALECTS {
            for query in [
                "with s as (select email from contacts) select email from s",
                "select email from a union all select email from b",
                "(select 1) except distinct (select 2)",
            ] {
                assert!(check(kind, query).is_ok(), "{kind}: {query}");
            }
        }
    }

    #[test]
    fn a_write_statement_is_refused_by_its_kind() {
        for kind in DIALECTS {
            assert!(refused(kind, "delete from contacts where true").contains("a DELETE statement"));
            assert!(refused(kind, "insert into contacts (id) values (1)").contains("an INSERT statement"));
            assert!(refused(kind, "update contacts set email = 'x' where true").contains("an UPDATE statement"));
            assert!(refused(kind, "create table t (id int)").contains("a CREATE TABLE statement"));
            assert!(refused(kind, "drop table contacts").contains("a DROP TABLE statement"));
            refused(kind, "truncate table contacts");
        }
    }

    #[test]
    fn a_merge_is_refused() {
        for kind in DIALECTS {
            let text = refused(
                kind,
                "merge into t using s on t.id = s.id when matched then update set t.v = s.v \
                 when not matched then insert (id, v) values (s.id, s.v)",
            );
            assert!(text.contains("a MERGE statement"), "{text}");
        }
    }

    #[test]
    fn several_statements_are_refused_even_when_all_are_selects() {
        for kind in DIALECTS {
            assert!(refused(kind, "select 1; delete from contacts where true").contains("2 statements"));
            assert!(refused(kind, "select 1; select 2").contains("2 statements"));
        }
    }

    #[test]
    fn text_that_does_not_parse_or_is_empty_is_refused() {
        for kind in DIALECTS {
            assert!(refused(kind, "selec email from contacts").contains("does not parse"));
            assert!(refused(kind, "select email from").contains("does not parse"));
            assert!(refused(kind, "   ").contains("empty"));
        }
    }

    #[test]
    fn a_statement_inside_a_query_or_select_into_is_refused() {
        // Neither warehouse's dialect has these; Postgres's parses both, so the walk over the
        // whole query is checked there and the guard does not rely on the warehouse refusing.
        let postgres = sqlparser::dialect::PostgreSqlDialect {};
        let nested = refusal(&postgres, "with gone as (delete from contacts returning id) select * from gone");
        assert_eq!(nested.as_deref(), Some("the query holds a DELETE statement inside it"));
        let deeper = "select * from t where id in (with n as (insert into log (id) values (1) returning id) select id \
                      from n)";
        assert_eq!(refusal(&postgres, deeper).as_deref(), Some("the query holds an INSERT statement inside it"));
        let into = refusal(&postgres, "select * into copy from contacts").expect("refused");
        assert!(into.contains("SELECT … INTO"), "{into}");
        for kind in DIALECTS {
            refused(kind, "select * into copy from contacts");
            refused(kind, "with gone as (delete from contacts returning id) select * from gone");
        }
    }

    #[test]
    fn other_statements_that_only_read_are_still_refused() {
        for kind in DIALECTS {
            refused(kind, "show tables");
            refused(kind, "explain select 1");
            refused(kind, "call refresh_scores()");
        }
    }

    #[test]
    fn refusals_never_repeat_the_querys_values() {
        let text = refused(DestinationKind::BigQuery, "insert into contacts (email) values ('secret@example.com')");
        assert!(!text.contains("secret@example.com"), "{text}");
        let text = refused(DestinationKind::Snowflake, "delete from contacts where email = 'secret@example.com'");
        assert!(!text.contains("secret@example.com"), "{text}");
    }
}
