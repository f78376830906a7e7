//! Expressions over a device's state: conditions (`STATUS.DONE && CTRL.IE`), computed field
//! values (`rx.level`), interrupt conditions (`ISR & IER`) and effect operands.
//!
//! C's operators and precedence on unsigned 64-bit values: `! ~ -` (unary), `* / %`, `+ -`,
//! `<< >>`, `< <= > >=`, `== !=`, `&`, `^`, `|`, `&&`, `||`, `c ? a : b`, parentheses. Operands: integer
//! literals (`12`, `0x1f`, `0b101`), `REG`, `REG.FIELD`, `REG[i].FIELD`, `FIFO.level` /
//! `.empty` / `.full` / `.free` / `.depth`, and `value` (what the triggering access read or
//! wrote). Arithmetic wraps; division by zero gives 0; comparisons and logic give 0 or 1.
//! Names are resolved once, when the description is compiled, so evaluation neither
//! allocates nor looks anything up by name.

/// A resolved operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// Bits `mask` (in register position) of register instance `reg`, shifted down by `shift`.
    Field {
        /// Register instance index.
        reg: u32,
        /// Shift of the field's lowest bit.
        shift: u32,
        /// The field's bits in register position.
        mask: u64,
    },
    /// A FIFO property.
    Fifo {
        /// FIFO index.
        fifo: u32,
        /// Which property.
        prop: FifoProp,
    },
    /// The value of the triggering access.
    Value,
}

/// What an expression can ask a FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FifoProp {
    /// Elements held.
    Level,
    /// 1 when empty.
    Empty,
    /// 1 when full.
    Full,
    /// Free places.
    Free,
    /// Capacity.
    Depth,
}

/// What evaluation reads: the device's state.
pub trait Env {
    /// The current value of an operand.
    fn operand(&self, op: Operand) -> u64;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unary {
    Not,
    Complement,
    Negate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binary {
    Mul,
    Div,
    Rem,
    Add,
    Sub,
    Shl,
    Shr,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Xor,
    Or,
    LogicalAnd,
    LogicalOr,
}

impl Binary {
    fn precedence(self) -> u8 {
        match self {
            Binary::Mul | Binary::Div | Binary::Rem => 10,
            Binary::Add | Binary::Sub => 9,
            Binary::Shl | Binary::Shr => 8,
            Binary::Lt | Binary::Le | Binary::Gt | Binary::Ge => 7,
            Binary::Eq | Binary::Ne => 6,
            Binary::And => 5,
            Binary::Xor => 4,
            Binary::Or => 3,
            Binary::LogicalAnd => 2,
            Binary::LogicalOr => 1,
        }
    }

    fn apply(self, a: u64, b: u64) -> u64 {
        match self {
            Binary::Mul => a.wrapping_mul(b),
            Binary::Div => a.checked_div(b).unwrap_or(0),
            Binary::Rem => a.checked_rem(b).unwrap_or(0),
            Binary::Add => a.wrapping_add(b),
            Binary::Sub => a.wrapping_sub(b),
            Binary::Shl => u32::try_from(b).ok().and_then(|s| a.checked_shl(s)).unwrap_or(0),
            Binary::Shr => u32::try_from(b).ok().and_then(|s| a.checked_shr(s)).unwrap_or(0),
            Binary::Lt => u64::from(a < b),
            Binary::Le => u64::from(a <= b),
            Binary::Gt => u64::from(a > b),
            Binary::Ge => u64::from(a >= b),
            Binary::Eq => u64::from(a == b),
            Binary::Ne => u64::from(a != b),
            Binary::And => a & b,
            Binary::Xor => a ^ b,
            Binary::Or => a | b,
            Binary::LogicalAnd | Binary::LogicalOr => unreachable_logical(),
        }
    }
}

/// `&&` and `||` short-circuit in [`Expr::eval`] and never reach [`Binary::apply`]; this
/// keeps `apply` total without a panic.
fn unreachable_logical() -> u64 {
    0
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A constant.
    Lit(u64),
    /// A state value.
    Operand(Operand),
    /// `op e`.
    Unary(UnaryOp, Box<Expr>),
    /// `a op b`.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `c ? a : b`.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// A unary operator (opaque: built only by the parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnaryOp(Unary);

/// A binary operator (opaque: built only by the parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinaryOp(Binary);

impl Expr {
    /// The value of the expression in `env`.
    pub fn eval(&self, env: &dyn Env) -> u64 {
        match self {
            Expr::Lit(v) => *v,
            Expr::Operand(op) => env.operand(*op),
            Expr::Unary(UnaryOp(op), e) => {
                let v = e.eval(env);
                match op {
                    Unary::Not => u64::from(v == 0),
                    Unary::Complement => !v,
                    Unary::Negate => v.wrapping_neg(),
                }
            }
            Expr::Binary(BinaryOp(Binary::LogicalAnd), a, b) => u64::from(a.eval(env) != 0 && b.eval(env) != 0),
            Expr::Binary(BinaryOp(Binary::LogicalOr), a, b) => u64::from(a.eval(env) != 0 || b.eval(env) != 0),
            Expr::Binary(BinaryOp(op), a, b) => op.apply(a.eval(env), b.eval(env)),
            Expr::Cond(c, a, b) => {
                if c.eval(env) != 0 {
                    a.eval(env)
                } else {
                    b.eval(env)
                }
            }
        }
    }

    /// Every operand the expression reads.
    pub fn operands(&self, out: &mut Vec<Operand>) {
        match self {
            Expr::Lit(_) => {}
            Expr::Operand(op) => out.push(*op),
            Expr::Unary(_, e) => e.operands(out),
            Expr::Binary(_, a, b) => {
                a.operands(out);
                b.operands(out);
            }
            Expr::Cond(c, a, b) => {
                c.operands(out);
                a.operands(out);
                b.operands(out);
            }
        }
    }

    /// Parses `text`, resolving each name with `resolve` (which says why a name is unknown).
    pub fn parse(text: &str, resolve: &dyn Fn(&str) -> Result<Operand, String>) -> Result<Expr, String> {
        let tokens = tokenize(text)?;
        let mut p = Parser {
            tokens: &tokens,
            pos: 0,
            resolve,
            depth: 0,
        };
        let (e, _) = p.ternary()?;
        match p.tokens.get(p.pos) {
            None => Ok(e),
            Some(t) => Err(format!("unexpected {} in `{text}`", t.describe())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Num(u64),
    Name(String),
    Op(&'static str),
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Num(n) => format!("number {n}"),
            Token::Name(n) => format!("name `{n}`"),
            Token::Op(o) => format!("`{o}`"),
            Token::Open => "`(`".to_owned(),
            Token::Close => "`)`".to_owned(),
        }
    }
}

/// Operators, longest first so `<=` wins over `<`.
const OPERATORS: [&str; 23] = [
    "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "*", "/", "%", "+", "-", "<", ">", "&", "^", "|", "!", "~", "?",
    ":", "=",
];

/// Parses an integer literal: decimal, `0x`, `0b` or `0o`, with `_` separators.
pub fn parse_int(text: &str) -> Option<u64> {
    let t = text.replace('_', "");
    let (digits, radix) = match t.get(..2) {
        Some("0x" | "0X") => (t.get(2..)?, 16),
        Some("0b" | "0B") => (t.get(2..)?, 2),
        Some("0o" | "0O") => (t.get(2..)?, 8),
        _ => (t.as_str(), 10),
    };
    u64::from_str_radix(digits, radix).ok()
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_digit() {
            let end = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len());
            let (lit, tail) = rest.split_at(end);
            out.push(Token::Num(
                parse_int(lit).ok_or_else(|| format!("`{lit}` is not a number"))?,
            ));
            rest = tail;
        } else if c.is_ascii_alphabetic() || c == '_' {
            // A name: identifiers joined by `.`, each optionally indexed `[n]`.
            let end = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '[' | ']')))
                .unwrap_or(rest.len());
            let (name, tail) = rest.split_at(end);
            out.push(Token::Name(name.to_owned()));
            rest = tail;
        } else if c == '(' {
            out.push(Token::Open);
            rest = &rest[1..];
        } else if c == ')' {
            out.push(Token::Close);
            rest = &rest[1..];
        } else if let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) {
            if *op == "=" {
                return Err(format!("`=` in `{text}`: compare with `==`"));
            }
            out.push(Token::Op(op));
            rest = &rest[op.len()..];
        } else {
            return Err(format!("unexpected character `{c}` in `{text}`"));
        }
        rest = rest.trim_start();
        if out.len() > MAX_TOKENS {
            return Err(format!("an expression has at most {MAX_TOKENS} operands and operators"));
        }
    }
    if out.is_empty() {
        return Err("empty expression".to_owned());
    }
    Ok(out)
}

/// Deepest nesting accepted: keeps evaluation's recursion bounded on hostile files.
const MAX_DEPTH: u32 = 64;
/// Tallest tree accepted: evaluation (and dropping) recurses once per level, and a flat
/// chain `a + b + c ...` is as tall as it is long, whatever its nesting.
pub const MAX_HEIGHT: u32 = 256;
/// Most tokens (operands, operators, parentheses) in one expression: bounds what one
/// evaluation costs.
pub const MAX_TOKENS: usize = 1024;

/// The height of a node whose tallest child is `child` tall, if it is not too tall.
fn taller(child: u32) -> Result<u32, String> {
    if child >= MAX_HEIGHT {
        return Err(format!(
            "expression more than {MAX_HEIGHT} operators deep: use parentheses to group long chains"
        ));
    }
    Ok(child + 1)
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    resolve: &'a dyn Fn(&str) -> Result<Operand, String>,
    depth: u32,
}

impl Parser<'_> {
    /// `c ? a : b` (right-associative, below `||`), or a plain expression; with its height.
    fn ternary(&mut self) -> Result<(Expr, u32), String> {
        let (cond, hc) = self.expr(0)?;
        if self.tokens.get(self.pos) != Some(&Token::Op("?")) {
            return Ok((cond, hc));
        }
        self.pos += 1;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("expression nested deeper than {MAX_DEPTH}"));
        }
        let (a, ha) = self.ternary()?;
        if self.tokens.get(self.pos) != Some(&Token::Op(":")) {
            return Err("`?` without its `:`".to_owned());
        }
        self.pos += 1;
        let (b, hb) = self.ternary()?;
        self.depth -= 1;
        let h = taller(hc.max(ha).max(hb))?;
        Ok((Expr::Cond(Box::new(cond), Box::new(a), Box::new(b)), h))
    }

    fn binary_op(&self) -> Option<Binary> {
        let Some(Token::Op(op)) = self.tokens.get(self.pos) else {
            return None;
        };
        Some(match *op {
            "*" => Binary::Mul,
            "/" => Binary::Div,
            "%" => Binary::Rem,
            "+" => Binary::Add,
            "-" => Binary::Sub,
            "<<" => Binary::Shl,
            ">>" => Binary::Shr,
            "<" => Binary::Lt,
            "<=" => Binary::Le,
            ">" => Binary::Gt,
            ">=" => Binary::Ge,
            "==" => Binary::Eq,
            "!=" => Binary::Ne,
            "&" => Binary::And,
            "^" => Binary::Xor,
            "|" => Binary::Or,
            "&&" => Binary::LogicalAnd,
            "||" => Binary::LogicalOr,
            _ => return None,
        })
    }

    fn expr(&mut self, min_prec: u8) -> Result<(Expr, u32), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("expression nested deeper than {MAX_DEPTH}"));
        }
        let (mut lhs, mut h) = self.unary()?;
        while let Some(op) = self.binary_op() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            let (rhs, hr) = self.expr(prec + 1)?;
            h = taller(h.max(hr))?;
            lhs = Expr::Binary(BinaryOp(op), Box::new(lhs), Box::new(rhs));
        }
        self.depth -= 1;
        Ok((lhs, h))
    }

    fn unary(&mut self) -> Result<(Expr, u32), String> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        match token {
            Some(Token::Num(n)) => Ok((Expr::Lit(n), 1)),
            Some(Token::Name(name)) => (self.resolve)(&name).map(|op| (Expr::Operand(op), 1)),
            Some(Token::Op(op @ ("!" | "~" | "-"))) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(format!("expression nested deeper than {MAX_DEPTH}"));
                }
                let (e, he) = self.unary()?;
                self.depth -= 1;
                let u = match op {
                    "!" => Unary::Not,
                    "~" => Unary::Complement,
                    _ => Unary::Negate,
                };
                Ok((Expr::Unary(UnaryOp(u), Box::new(e)), taller(he)?))
            }
            Some(Token::Open) => {
                let e = self.ternary()?;
                match self.tokens.get(self.pos) {
                    Some(Token::Close) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    _ => Err("missing `)`".to_owned()),
                }
            }
            Some(t) => Err(format!("unexpected {}", t.describe())),
            None => Err("expression ends too early".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Env for Fixed {
        fn operand(&self, op: Operand) -> u64 {
            match op {
                Operand::Field { reg, .. } => u64::from(reg),
                Operand::Fifo { .. } => 7,
                Operand::Value => 0x55,
            }
        }
    }

    fn resolve(name: &str) -> Result<Operand, String> {
        match name {
            "A" => Ok(Operand::Field {
                reg: 3,
                shift: 0,
                mask: 0xff,
            }),
            "B.F" => Ok(Operand::Field {
                reg: 0,
                shift: 0,
                mask: 1,
            }),
            "rx.level" => Ok(Operand::Fifo {
                fifo: 0,
                prop: FifoProp::Level,
            }),
            "value" => Ok(Operand::Value),
            _ => Err(format!("no register or FIFO `{name}`")),
        }
    }

    fn eval(text: &str) -> u64 {
        Expr::parse(text, &resolve).unwrap().eval(&Fixed)
    }

    #[test]
    fn c_precedence_and_operators() {
        assert_eq!(eval("1 + 2 * 3"), 7);
        assert_eq!(eval("(1 + 2) * 3"), 9);
        assert_eq!(eval("1 << 4 | 1"), 17);
        assert_eq!(eval("A & 1 == 1"), 3 & 1, "C: == binds tighter than &");
        assert_eq!(eval("(A & 1) == 1"), 1);
        assert_eq!(eval("!B.F && A"), 1);
        assert_eq!(eval("B.F || rx.level >= 7"), 1);
        assert_eq!(eval("~0 >> 60"), 0xf);
        assert_eq!(eval("-1"), u64::MAX);
        assert_eq!(eval("value ^ 0xff"), 0xaa);
        assert_eq!(eval("0b1010 % 0o3"), 1);
        assert_eq!(eval("1_000"), 1000);
        assert_eq!(eval("B.F ? 1 : 2"), 2);
        assert_eq!(eval("A ? B.F ? 10 : 20 : 30"), 20);
        assert_eq!(eval("(A == 3 ? 0x40 : 0) | 1"), 0x41);
    }

    #[test]
    fn never_panics_on_arithmetic() {
        assert_eq!(eval("5 / 0"), 0);
        assert_eq!(eval("5 % 0"), 0);
        assert_eq!(eval("1 << 64"), 0);
        assert_eq!(eval("1 >> 99999999999"), 0);
        assert_eq!(eval("0xffffffffffffffff * 2"), u64::MAX - 1);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |t: &str| Expr::parse(t, &resolve).unwrap_err();
        assert_eq!(e("C.X"), "no register or FIFO `C.X`");
        assert_eq!(e("A = 1"), "`=` in `A = 1`: compare with `==`");
        assert_eq!(e("(A"), "missing `)`");
        assert_eq!(e("A +"), "expression ends too early");
        assert_eq!(e("A B.F"), "unexpected name `B.F` in `A B.F`");
        assert_eq!(e(""), "empty expression");
        assert_eq!(e("1 $ 2"), "unexpected character `$` in `1 $ 2`");
        assert_eq!(e("A ? 1"), "`?` without its `:`");
        assert_eq!(e("A : 1"), "unexpected `:` in `A : 1`");
        assert_eq!(e("0xZZ"), "`0xZZ` is not a number");
        assert!(e(&"(".repeat(100)).contains("nested deeper"));
        assert!(e(&"!".repeat(100)).contains("nested deeper"));
    }

    #[test]
    fn long_chains_are_refused_not_a_stack_overflow() {
        // A hostile input run through the fuzz targets: `1+1+...` is a left-deep tree as tall as
        // it is long, and its evaluation and drop recursed once per term (a stack overflow at
        // ~100k terms).
        let chain = |n: usize| vec!["A"; n].join(" | ");
        assert_eq!(
            Expr::parse(&chain(MAX_HEIGHT as usize), &resolve).map(|e| e.eval(&Fixed)),
            Ok(3)
        );
        let e = Expr::parse(&chain(MAX_HEIGHT as usize + 1), &resolve).unwrap_err();
        assert!(e.contains("operators deep"), "{e}");
        let e = Expr::parse(&vec!["1"; 200_000].join("+"), &resolve).unwrap_err();
        assert!(e.contains("at most 1024"), "{e}");
        // Grouped, a long expression is fine.
        let grouped = vec![format!("({})", chain(100)); 5].join(" + ");
        assert_eq!(Expr::parse(&grouped, &resolve).map(|e| e.eval(&Fixed)), Ok(15));
        let e = Expr::parse(&format!("{}0", "A ? 1 : ".repeat(100)), &resolve).unwrap_err();
        assert!(e.contains("nested deeper"), "{e}");
    }

    #[test]
    fn operands_are_listed() {
        let mut ops = Vec::new();
        Expr::parse("A & B.F | rx.level", &resolve).unwrap().operands(&mut ops);
        assert_eq!(ops.len(), 3);
    }
}
