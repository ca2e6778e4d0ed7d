//! A tokenizer and parser for the subset of PowerShell that the controller sends to Exchange
//! management shells.
//!
//! Supported: statements separated by newlines or `;`, pipelines, and commands with
//! `-Name value`, `-Switch` and `-Name:value` parameters. Values are single-quoted strings
//! (`''` is a quote), double-quoted strings without variables, `$true`, `$false`, `$null`,
//! comma-separated lists, hashtables (`@{Add='x'}`) and array literals (`@('a','b')`). The
//! assignment `$ErrorActionPreference = 'Stop'`, `#` and `<# #>` comments and backtick line
//! continuation are supported too. Everything else, in particular `$variable` and `$(...)` expansion inside
//! double quotes, subexpressions and redirection, is rejected with an error before anything
//! runs: the stand-in never evaluates text it does not understand.
//!
//! As in PowerShell, the typographic quotes U+2018 to U+201B are single quotes and U+201C to
//! U+201E double quotes. A caller that escapes only the ASCII quotes therefore gets the same
//! injected statements here as from a real shell.

use std::fmt;

/// A value as written in the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A quoted string or a bare word (`ApplicationImpersonation`, `42`).
    Text(String),
    /// `$true` or `$false`.
    Bool(bool),
    /// `$null`.
    Null,
    /// A comma-separated list or `@(...)`.
    List(Vec<Value>),
    /// `@{Key=value; ...}`, keys in the order written.
    Table(Vec<(String, Value)>),
}

/// One argument of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Argument {
    /// `-Name`, with the value written as `-Name:value`.
    Parameter {
        /// The name without the dash.
        name: String,
        /// The value after a colon.
        inline: Option<Value>,
    },
    /// A value: positional, or the value of the preceding parameter.
    Value(Value),
}

/// A command of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command name as written (`Get-Mailbox`).
    pub name: String,
    /// Its arguments in order.
    pub arguments: Vec<Argument>,
}

/// A statement of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `$name = value`.
    Assignment {
        /// The variable name without `$`.
        variable: String,
        /// The value.
        value: Value,
    },
    /// Commands joined by `|`.
    Pipeline(Vec<Command>),
}

/// A syntax error in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The description of the problem.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ParserError: line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Variable(String),
    Parameter(String),
    /// `-Name:` immediately followed by its value.
    ParameterColon(String),
    Pipe,
    Comma,
    Equals,
    Separator,
    TableOpen,
    ArrayOpen,
    Close(char),
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    source: &'a str,
    tokens: Vec<(Token, usize)>,
}

/// Characters that end a bare word.
fn ends_word(c: char) -> bool {
    c.is_whitespace()
        || is_single_quote(c)
        || is_double_quote(c)
        || matches!(c, '|' | ';' | ',' | '(' | ')' | '{' | '}' | '=')
}

/// Returns whether PowerShell reads `c` as a single quote: the apostrophe and the typographic
/// single quotes U+2018 to U+201B open, close and (written twice) escape a single-quoted string.
fn is_single_quote(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}')
}

/// Returns whether PowerShell reads `c` as a double quote: `"` and U+201C to U+201E.
fn is_double_quote(c: char) -> bool {
    matches!(c, '"' | '\u{201C}' | '\u{201D}' | '\u{201E}')
}

/// Deepest nesting of `@(...)` and `@{...}` values. The cmdlets the stand-in runs take at most
/// a hashtable of lists, so this only stops a hostile script from exhausting the stack.
const MAX_NESTING: usize = 32;

impl<'a> Lexer<'a> {
    fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        let before = &self.source[..offset.min(self.source.len())];
        ParseError {
            line: before.matches('\n').count() + 1,
            column: before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
            message: message.into(),
        }
    }

    fn run(mut self) -> Result<Vec<(Token, usize)>, ParseError> {
        while let Some(&(offset, c)) = self.chars.peek() {
            match c {
                '\n' | ';' => {
                    self.chars.next();
                    self.tokens.push((Token::Separator, offset));
                }
                c if c.is_whitespace() => {
                    self.chars.next();
                }
                '`' => {
                    // A backtick before a line break continues the line.
                    self.chars.next();
                    match self.chars.peek() {
                        Some((_, '\n')) => {
                            self.chars.next();
                        }
                        Some((_, '\r')) => {
                            self.chars.next();
                            if let Some((_, '\n')) = self.chars.peek() {
                                self.chars.next();
                            }
                        }
                        _ => {
                            return Err(
                                self.error(offset, "a backtick outside quotes must end the line")
                            );
                        }
                    }
                }
                '#' => self.skip_line(),
                '<' if self.source[offset..].starts_with("<#") => self.skip_block(offset)?,
                '|' => self.single(Token::Pipe, offset),
                ',' => self.single(Token::Comma, offset),
                '=' => self.single(Token::Equals, offset),
                ')' | '}' => self.single(Token::Close(c), offset),
                c if is_single_quote(c) => {
                    let text = self.single_quoted(offset)?;
                    self.tokens.push((Token::Quoted(text), offset));
                }
                c if is_double_quote(c) => {
                    let text = self.double_quoted(offset)?;
                    self.tokens.push((Token::Quoted(text), offset));
                }
                '@' => {
                    self.chars.next();
                    match self.chars.next() {
                        Some((_, '{')) => self.tokens.push((Token::TableOpen, offset)),
                        Some((_, '(')) => self.tokens.push((Token::ArrayOpen, offset)),
                        _ => {
                            return Err(self.error(
                                offset,
                                "`@` must start a hashtable `@{` or an array `@(`",
                            ));
                        }
                    }
                }
                '$' => {
                    self.chars.next();
                    let name = self.word();
                    if name.is_empty() {
                        return Err(self.error(offset, "`$` must be followed by a variable name; subexpressions `$(...)` are not supported"));
                    }
                    self.tokens.push((Token::Variable(name), offset));
                }
                '(' | '{' => {
                    return Err(self.error(offset, format!("`{c}` starts a subexpression or script block, which the lab's shell does not run")));
                }
                '-' => {
                    self.chars.next();
                    let starts_name = self.chars.peek().is_some_and(|(_, c)| c.is_alphabetic());
                    if !starts_name {
                        let rest = self.word();
                        self.tokens.push((Token::Word(format!("-{rest}")), offset));
                        continue;
                    }
                    let name = self.parameter_name();
                    if let Some((_, ':')) = self.chars.peek() {
                        self.chars.next();
                        self.tokens.push((Token::ParameterColon(name), offset));
                    } else {
                        self.tokens.push((Token::Parameter(name), offset));
                    }
                }
                '>' | '<' | '&' => {
                    return Err(self.error(
                        offset,
                        format!("`{c}` (redirection or call operator) is not supported"),
                    ));
                }
                _ => {
                    let word = self.word();
                    self.tokens.push((Token::Word(word), offset));
                }
            }
        }
        Ok(self.tokens)
    }

    fn single(&mut self, token: Token, offset: usize) {
        self.chars.next();
        self.tokens.push((token, offset));
    }

    fn skip_line(&mut self) {
        while let Some(&(_, c)) = self.chars.peek() {
            if c == '\n' {
                break;
            }
            self.chars.next();
        }
    }

    fn skip_block(&mut self, offset: usize) -> Result<(), ParseError> {
        match self.source[offset + 2..].find("#>") {
            Some(end) => {
                let stop = offset + 2 + end + 2;
                while self.chars.peek().is_some_and(|(i, _)| *i < stop) {
                    self.chars.next();
                }
                Ok(())
            }
            None => Err(self.error(offset, "the block comment `<#` is not closed with `#>`")),
        }
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(&(_, c)) = self.chars.peek() {
            if ends_word(c) || c == '$' {
                break;
            }
            word.push(c);
            self.chars.next();
        }
        word
    }

    fn parameter_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(&(_, c)) = self.chars.peek() {
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            name.push(c);
            self.chars.next();
        }
        name
    }

    fn single_quoted(&mut self, offset: usize) -> Result<String, ParseError> {
        self.chars.next();
        let mut text = String::new();
        loop {
            match self.chars.next() {
                Some((_, quote)) if is_single_quote(quote) => {
                    // PowerShell keeps the second quote of a doubled pair.
                    match self.chars.peek() {
                        Some(&(_, second)) if is_single_quote(second) => {
                            self.chars.next();
                            text.push(second);
                        }
                        _ => return Ok(text),
                    }
                }
                Some((_, c)) => text.push(c),
                None => return Err(self.error(offset, "the string is missing its closing `'`")),
            }
        }
    }

    fn double_quoted(&mut self, offset: usize) -> Result<String, ParseError> {
        self.chars.next();
        let mut text = String::new();
        loop {
            match self.chars.next() {
                Some((_, quote)) if is_double_quote(quote) => match self.chars.peek() {
                    Some(&(_, second)) if is_double_quote(second) => {
                        self.chars.next();
                        text.push(second);
                    }
                    _ => return Ok(text),
                },
                Some((_, '`')) => match self.chars.next() {
                    Some((_, 'n')) => text.push('\n'),
                    Some((_, 't')) => text.push('\t'),
                    Some((_, 'r')) => text.push('\r'),
                    Some((_, '0')) => text.push('\0'),
                    Some((_, c)) => text.push(c),
                    None => {
                        return Err(self.error(offset, "the string is missing its closing `\"`"));
                    }
                },
                Some((at, '$')) => {
                    let next = self.chars.peek().map(|(_, c)| *c);
                    if next.is_some_and(|c| {
                        c.is_alphanumeric() || matches!(c, '(' | '{' | '_' | ':' | '?' | '^')
                    }) {
                        return Err(self.error(
                            at,
                            "variable and subexpression expansion in double-quoted strings is not supported; use single quotes",
                        ));
                    }
                    text.push('$');
                }
                Some((_, c)) => text.push(c),
                None => return Err(self.error(offset, "the string is missing its closing `\"`")),
            }
        }
    }
}

/// Parses a whole script; nothing runs when any part of it does not parse.
pub fn parse(script: &str) -> Result<Vec<Statement>, ParseError> {
    let lexer = Lexer {
        chars: script.char_indices().peekable(),
        source: script,
        tokens: Vec::new(),
    };
    let tokens = lexer.run()?;
    let mut parser = Parser {
        tokens,
        position: 0,
        source: script,
        nesting: 0,
    };
    parser.script()
}

struct Parser<'a> {
    tokens: Vec<(Token, usize)>,
    position: usize,
    source: &'a str,
    /// How many `@(` and `@{` the value being read is inside.
    nesting: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position).map(|(t, _)| t)
    }

    fn next(&mut self) -> Option<(Token, usize)> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.position)
            .map_or(self.source.len(), |(_, o)| *o)
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        let before = &self.source[..offset.min(self.source.len())];
        ParseError {
            line: before.matches('\n').count() + 1,
            column: before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
            message: message.into(),
        }
    }

    fn script(&mut self) -> Result<Vec<Statement>, ParseError> {
        let mut statements = Vec::new();
        loop {
            while self.peek() == Some(&Token::Separator) {
                self.next();
            }
            if self.peek().is_none() {
                return Ok(statements);
            }
            statements.push(self.statement()?);
            match self.peek() {
                None | Some(Token::Separator) => {}
                Some(_) => {
                    let offset = self.offset();
                    return Err(self.error(
                        offset,
                        "unexpected token; statements are separated by `;` or a line break",
                    ));
                }
            }
        }
    }

    fn statement(&mut self) -> Result<Statement, ParseError> {
        if let Some(Token::Variable(name)) = self.peek().cloned() {
            let offset = self.offset();
            self.next();
            if self.peek() != Some(&Token::Equals) {
                return Err(self.error(
                    offset,
                    format!(
                        "`${name}` must be assigned with `=`; variables are not otherwise supported"
                    ),
                ));
            }
            self.next();
            let value = self.value_list()?;
            return Ok(Statement::Assignment {
                variable: name,
                value,
            });
        }
        let mut commands = vec![self.command()?];
        while self.peek() == Some(&Token::Pipe) {
            self.next();
            while self.peek() == Some(&Token::Separator) {
                self.next();
            }
            commands.push(self.command()?);
        }
        Ok(Statement::Pipeline(commands))
    }

    fn command(&mut self) -> Result<Command, ParseError> {
        let offset = self.offset();
        let name = match self.next() {
            Some((Token::Word(name), _)) => name,
            _ => return Err(self.error(offset, "expected a command name")),
        };
        let mut arguments = Vec::new();
        loop {
            match self.peek() {
                None | Some(Token::Separator) | Some(Token::Pipe) => break,
                Some(Token::Parameter(name)) => {
                    let name = name.clone();
                    self.next();
                    arguments.push(Argument::Parameter { name, inline: None });
                }
                Some(Token::ParameterColon(name)) => {
                    let name = name.clone();
                    self.next();
                    let value = self.value_list()?;
                    arguments.push(Argument::Parameter {
                        name,
                        inline: Some(value),
                    });
                }
                Some(_) => arguments.push(Argument::Value(self.value_list()?)),
            }
        }
        Ok(Command { name, arguments })
    }

    /// Parses a value, or several values joined by commas into a list.
    fn value_list(&mut self) -> Result<Value, ParseError> {
        let first = self.value()?;
        if self.peek() != Some(&Token::Comma) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.peek() == Some(&Token::Comma) {
            self.next();
            while self.peek() == Some(&Token::Separator) {
                self.next();
            }
            items.push(self.value()?);
        }
        Ok(Value::List(items))
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        let offset = self.offset();
        match self.next() {
            Some((Token::Word(word), _)) => Ok(Value::Text(word)),
            Some((Token::Quoted(text), _)) => Ok(Value::Text(text)),
            Some((Token::Variable(name), _)) => match name.to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "null" => Ok(Value::Null),
                _ => Err(self.error(
                    offset,
                    format!(
                        "the variable `${name}` is not supported; only $true, $false and $null are"
                    ),
                )),
            },
            Some((Token::TableOpen, _)) => {
                self.enter(offset)?;
                let table = self.table(offset)?;
                self.nesting -= 1;
                Ok(table)
            }
            Some((Token::ArrayOpen, _)) => {
                self.enter(offset)?;
                let array = self.array(offset)?;
                self.nesting -= 1;
                Ok(array)
            }
            _ => Err(self.error(offset, "expected a value")),
        }
    }

    /// Enters one `@(` or `@{`, or fails when values nest deeper than [`MAX_NESTING`].
    fn enter(&mut self, offset: usize) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.error(
                offset,
                format!("arrays and hashtables nest deeper than {MAX_NESTING} levels"),
            ));
        }
        Ok(())
    }

    fn array(&mut self, offset: usize) -> Result<Value, ParseError> {
        let mut items = Vec::new();
        loop {
            while matches!(self.peek(), Some(Token::Separator) | Some(Token::Comma)) {
                self.next();
            }
            match self.peek() {
                Some(Token::Close(')')) => {
                    self.next();
                    return Ok(Value::List(items));
                }
                None => {
                    return Err(self.error(offset, "the array `@(` is not closed with `)`"));
                }
                _ => items.push(self.value()?),
            }
        }
    }

    fn table(&mut self, offset: usize) -> Result<Value, ParseError> {
        let mut entries = Vec::new();
        loop {
            while self.peek() == Some(&Token::Separator) {
                self.next();
            }
            let key_offset = self.offset();
            let key = match self.next() {
                Some((Token::Close('}'), _)) => return Ok(Value::Table(entries)),
                Some((Token::Word(key), _)) | Some((Token::Quoted(key), _)) => key,
                None => return Err(self.error(offset, "the hashtable `@{` is not closed with `}`")),
                _ => return Err(self.error(key_offset, "expected a hashtable key")),
            };
            if self.next().map(|(t, _)| t) != Some(Token::Equals) {
                return Err(self.error(
                    key_offset,
                    format!("the hashtable key `{key}` must be followed by `=`"),
                ));
            }
            let value = self.value_list()?;
            entries.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(script: &str) -> Vec<Command> {
        match parse(script).expect("parses").remove(0) {
            Statement::Pipeline(commands) => commands,
            other => panic!("not a pipeline: {other:?}"),
        }
    }

    #[test]
    fn parameters_switches_and_lists() {
        let commands = pipeline(
            "Get-ManagementRoleAssignment -Role ApplicationImpersonation -GetEffectiveUsers | Select-Object Name,RoleAssigneeName | ConvertTo-Json -Depth 3 -Compress",
        );
        assert_eq!(commands.len(), 3);
        assert_eq!(commands[0].name, "Get-ManagementRoleAssignment");
        assert_eq!(
            commands[1].arguments,
            vec![Argument::Value(Value::List(vec![
                Value::Text("Name".into()),
                Value::Text("RoleAssigneeName".into())
            ]))]
        );
    }

    #[test]
    fn quotes_escape_as_powershell_does() {
        let commands =
            pipeline(r#"Get-Mailbox -Identity 'o''brien' ; Get-Mailbox "say ""hi"" `$5""#);
        assert_eq!(
            commands[0].arguments[1],
            Argument::Value(Value::Text("o'brien".into()))
        );
        let second = parse(r#"Get-Mailbox "say ""hi"" `$5""#).expect("parses");
        let Statement::Pipeline(commands) = &second[0] else {
            panic!()
        };
        assert_eq!(
            commands[0].arguments[0],
            Argument::Value(Value::Text("say \"hi\" $5".into()))
        );
    }

    #[test]
    fn injection_stays_inside_the_string() {
        let statements = parse("Get-Mailbox -Identity 'alice''; Remove-ManagementRoleAssignment -Identity x -Confirm:$false; '''").expect("parses");
        assert_eq!(statements.len(), 1);
        let Statement::Pipeline(commands) = &statements[0] else {
            panic!()
        };
        assert_eq!(commands.len(), 1);
        assert_eq!(
            commands[0].arguments[1],
            Argument::Value(Value::Text(
                "alice'; Remove-ManagementRoleAssignment -Identity x -Confirm:$false; '".into()
            ))
        );
    }

    #[test]
    fn typographic_quotes_delimit_strings() {
        // Doubling every kind of single quote, as a careful caller does, keeps the value whole.
        let statements = parse("Get-Mailbox -Identity 'O\u{2019}\u{2019}Brien; Remove-Mailbox x'")
            .expect("parses");
        assert_eq!(statements.len(), 1);
        let Statement::Pipeline(commands) = &statements[0] else {
            panic!("a pipeline")
        };
        assert_eq!(
            commands[0].arguments[1],
            Argument::Value(Value::Text("O\u{2019}Brien; Remove-Mailbox x".into()))
        );

        // Doubling only the apostrophe lets U+2019 close the string, as in PowerShell, and
        // what follows runs as a statement of its own.
        let statements =
            parse("Get-Mailbox -Identity 'O\u{2019}; Remove-Mailbox x; Get-Mailbox \u{2018}'")
                .expect("parses");
        assert_eq!(statements.len(), 3, "{statements:?}");

        let statements = parse("Get-Mailbox \u{201C}alice\u{201D}").expect("parses");
        let Statement::Pipeline(commands) = &statements[0] else {
            panic!("a pipeline")
        };
        assert_eq!(
            commands[0].arguments[0],
            Argument::Value(Value::Text("alice".into()))
        );
    }

    #[test]
    fn nesting_of_values_is_bounded() {
        let arrays = |depth: usize| {
            format!(
                "Get-Mailbox -Identity {}'a'{}",
                "@(".repeat(depth),
                ")".repeat(depth)
            )
        };
        assert!(parse(&arrays(MAX_NESTING)).is_ok());
        let error = parse(&arrays(MAX_NESTING + 1)).expect_err("too deep");
        assert!(error.message.contains("nest deeper"), "{error}");

        let tables = format!(
            "Get-Mailbox -Identity {}'a'{}",
            "@{a=".repeat(MAX_NESTING + 1),
            "}".repeat(MAX_NESTING + 1)
        );
        assert!(parse(&tables).is_err());
    }

    #[test]
    fn expansion_and_subexpressions_are_rejected() {
        for script in [
            r#"Get-Mailbox "$(Remove-ManagementRoleAssignment x)""#,
            r#"Get-Mailbox "$env:USERNAME""#,
            "Get-Mailbox $user",
            "Get-Mailbox (Get-Date)",
            "Get-Mailbox x > out.txt",
            "& 'Remove-Item' x",
            "Get-Mailbox { x }",
            "Get-Mailbox 'unclosed",
            "Get-Mailbox @x",
        ] {
            assert!(parse(script).is_err(), "{script} should not parse");
        }
    }

    #[test]
    fn assignment_comments_and_tables() {
        let statements = parse(
            "$ErrorActionPreference = 'Stop' # fail fast\n<# a\nblock #>\nSet-OrganizationConfig -EwsEnabled $true `\n  -EwsAllowedAppIDs @{Add='a','b'} -Confirm:$false",
        )
        .expect("parses");
        assert_eq!(
            statements[0],
            Statement::Assignment {
                variable: "ErrorActionPreference".into(),
                value: Value::Text("Stop".into())
            }
        );
        let Statement::Pipeline(commands) = &statements[1] else {
            panic!()
        };
        assert_eq!(
            commands[0].arguments,
            vec![
                Argument::Parameter {
                    name: "EwsEnabled".into(),
                    inline: None
                },
                Argument::Value(Value::Bool(true)),
                Argument::Parameter {
                    name: "EwsAllowedAppIDs".into(),
                    inline: None
                },
                Argument::Value(Value::Table(vec![(
                    "Add".into(),
                    Value::List(vec![Value::Text("a".into()), Value::Text("b".into())])
                )])),
                Argument::Parameter {
                    name: "Confirm".into(),
                    inline: Some(Value::Bool(false))
                },
            ]
        );
    }
}
