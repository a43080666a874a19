// Recursive-descent parser with jinja2's grammar and operator precedence (lowest first):
//   a if c else b  <  or  <  and  <  not  <  comparisons/in  <  + -  <  ~  <  * / // %
//   <  **  <  unary - +  <  postfix (. [] ())  <  filters | and tests `is`.
#include <algorithm>
#include <set>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/interp.h"
#include "tokenizer/jinja/lexer.h"

namespace tide::jinja {
namespace {

// Nesting bound for expressions and blocks, so hostile templates cannot overflow the
// parser's (or the evaluator's) stack.
constexpr int kMaxNesting = 200;

using ExprPtr = std::unique_ptr<Expr>;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Result<std::unique_ptr<Program>> Run() {
    auto program = std::make_unique<Program>();
    std::string end;
    RETURN_IF_ERROR(ParseBody(program->body, {}, &end));
    RETURN_IF_ERROR(CheckNames(program->body, /*conditional=*/false));
    return program;
  }

 private:
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  void Next() { if (pos_ + 1 < toks_.size()) ++pos_; }
  bool IsOp(const char* op) const { return Cur().type == Tok::kOp && Cur().text == op; }
  bool IsName(const char* n) const { return Cur().type == Tok::kName && Cur().text == n; }

  Status Error(const std::string& msg) const {
    return InvalidArgument("chat template line " + std::to_string(Cur().line) + ": " + msg);
  }
  static std::string Describe(const Token& t) {
    switch (t.type) {
      case Tok::kEof: return "end of template";
      case Tok::kBlockEnd: return "end of statement block";
      case Tok::kVarEnd: return "end of print statement";
      case Tok::kString: return "string";
      case Tok::kInt: case Tok::kFloat: return "number";
      default: return "'" + t.text + "'";
    }
  }
  Status Unexpected() const { return Error("unexpected " + Describe(Cur())); }
  Status ExpectOp(const char* op) {
    if (!IsOp(op)) return Error(std::string("expected '") + op + "', got " + Describe(Cur()));
    Next();
    return OkStatus();
  }
  Status ExpectBlockEnd() {
    if (Cur().type != Tok::kBlockEnd) return Error("expected end of statement block, got " + Describe(Cur()));
    Next();
    return OkStatus();
  }
  Result<std::string> ExpectName() {
    if (Cur().type != Tok::kName) return Error("expected a name, got " + Describe(Cur()));
    std::string n = Cur().text;
    Next();
    return n;
  }

  struct DepthGuard {
    explicit DepthGuard(int& d) : d_(d) { ++d_; }
    ~DepthGuard() { --d_; }
    int& d_;
  };

  ExprPtr Node(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // ---- name checks -------------------------------------------------------------

  // jinja2 rejects an unknown filter or test when compiling, except inside an `if`
  // statement or an inline if-expression, where the error waits until it runs.
  static Status CheckExprNames(const Expr* e, bool conditional) {
    if (!e) return OkStatus();
    if (e->kind == ExprKind::kCond) conditional = true;
    if (!conditional) {
      if (e->kind == ExprKind::kFilter && !IsKnownFilter(e->name)) {
        return InvalidArgument("chat template line " + std::to_string(e->line) + ": No filter named '" + e->name + "'.");
      }
      if (e->kind == ExprKind::kTest && !IsKnownTest(e->name)) {
        return InvalidArgument("chat template line " + std::to_string(e->line) + ": No test named '" + e->name + "'.");
      }
    }
    for (const auto& c : e->children) RETURN_IF_ERROR(CheckExprNames(c.get(), conditional));
    return OkStatus();
  }

  static Status CheckNames(const Body& body, bool conditional) {
    for (const auto& st : body) {
      bool cond = conditional || st->kind == StmtKind::kIf;
      // A {% filter %} / {% set x | f %} chain is checked even inside an `if`.
      bool block_filter = st->kind == StmtKind::kFilterBlock || st->kind == StmtKind::kSetBlock;
      RETURN_IF_ERROR(CheckExprNames(st->expr.get(), cond && !block_filter));
      RETURN_IF_ERROR(CheckExprNames(st->cond.get(), cond));
      for (const auto& d : st->defaults) RETURN_IF_ERROR(CheckExprNames(d.get(), cond));
      for (const auto& [test, b] : st->branches) {
        RETURN_IF_ERROR(CheckExprNames(test.get(), cond));
        RETURN_IF_ERROR(CheckNames(b, cond));
      }
      RETURN_IF_ERROR(CheckNames(st->body, cond));
      RETURN_IF_ERROR(CheckNames(st->else_body, cond));
    }
    return OkStatus();
  }

  // ---- statements ----------------------------------------------------------------

  // Parses until a block tag named in `ends` (consumed up to its name; *end = the name)
  // or the end of input (only allowed when `ends` is empty).
  Status ParseBody(Body& body, const std::set<std::string>& ends, std::string* end) {
    DepthGuard guard(depth_);
    if (depth_ > kMaxNesting) return Error("template nested too deeply");
    while (true) {
      const Token& t = Cur();
      if (t.type == Tok::kEof) {
        if (!ends.empty()) {
          std::string want;
          for (const auto& e : ends) want += (want.empty() ? "" : " or ") + std::string("'") + e + "'";
          return Error("unexpected end of template, expected " + want);
        }
        return OkStatus();
      }
      if (t.type == Tok::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        Next();
      } else if (t.type == Tok::kVarBegin) {
        Next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->line = Cur().line;
        ASSIGN_OR_RETURN(s->expr, ParseTuple(/*with_condexpr=*/true, {}));
        if (Cur().type != Tok::kVarEnd) return Error("expected end of print statement, got " + Describe(Cur()));
        Next();
        body.push_back(std::move(s));
      } else if (t.type == Tok::kBlockBegin) {
        Next();
        if (Cur().type != Tok::kName) return Error("tag name expected");
        if (ends.count(Cur().text)) {
          *end = Cur().text;
          Next();
          return OkStatus();
        }
        ASSIGN_OR_RETURN(auto s, ParseStatement());
        body.push_back(std::move(s));
      } else {
        return Unexpected();
      }
    }
  }

  Result<std::unique_ptr<Stmt>> ParseStatement() {
    auto s = std::make_unique<Stmt>();
    s->line = Cur().line;
    std::string tag = Cur().text;
    Next();
    std::string end;
    if (tag == "if") {
      s->kind = StmtKind::kIf;
      while (true) {
        ASSIGN_OR_RETURN(ExprPtr test, ParseTuple(/*with_condexpr=*/false, {}));
        RETURN_IF_ERROR(ExpectBlockEnd());
        Body b;
        RETURN_IF_ERROR(ParseBody(b, {"elif", "else", "endif"}, &end));
        s->branches.emplace_back(std::move(test), std::move(b));
        if (end == "elif") continue;
        if (end == "else") {
          RETURN_IF_ERROR(ExpectBlockEnd());
          RETURN_IF_ERROR(ParseBody(s->else_body, {"endif"}, &end));
        }
        break;
      }
    } else if (tag == "for") {
      s->kind = StmtKind::kFor;
      ASSIGN_OR_RETURN(s->target, ParseAssignTarget(/*allow_ns=*/false, "in"));
      if (!IsName("in")) return Error("expected 'in', got " + Describe(Cur()));
      Next();
      ASSIGN_OR_RETURN(s->expr, ParseTuple(/*with_condexpr=*/false, {"recursive"}));
      if (IsName("if")) {
        Next();
        ASSIGN_OR_RETURN(s->cond, ParseExpression(/*with_condexpr=*/true));
      }
      if (IsName("recursive")) return Error("recursive for loops are not supported");
      RETURN_IF_ERROR(ExpectBlockEnd());
      ++loop_depth_;
      Status st = ParseBody(s->body, {"endfor", "else"}, &end);
      --loop_depth_;
      RETURN_IF_ERROR(st);
      if (end == "else") {
        RETURN_IF_ERROR(ExpectBlockEnd());
        RETURN_IF_ERROR(ParseBody(s->else_body, {"endfor"}, &end));
      }
    } else if (tag == "set") {
      ASSIGN_OR_RETURN(s->target, ParseAssignTarget(/*allow_ns=*/true, ""));
      if (IsOp("=")) {
        Next();
        s->kind = StmtKind::kSet;
        ASSIGN_OR_RETURN(s->expr, ParseTuple(/*with_condexpr=*/true, {}));
        return FinishSimple(std::move(s));
      }
      s->kind = StmtKind::kSetBlock;
      if (IsOp("|")) {
        ASSIGN_OR_RETURN(s->expr, ParseFilterChain(nullptr));
      }
      RETURN_IF_ERROR(ExpectBlockEnd());
      RETURN_IF_ERROR(ParseBody(s->body, {"endset"}, &end));
    } else if (tag == "macro" || tag == "call") {
      s->kind = tag == "macro" ? StmtKind::kMacro : StmtKind::kCallBlock;
      if (tag == "macro") {
        ASSIGN_OR_RETURN(s->name, ExpectName());
        RETURN_IF_ERROR(ExpectOp("("));
        RETURN_IF_ERROR(ParseParams(*s));
      } else if (IsOp("(")) {
        Next();
        RETURN_IF_ERROR(ParseParams(*s));
      }
      if (tag == "call") {
        ASSIGN_OR_RETURN(s->expr, ParseExpression(/*with_condexpr=*/true));
        if (s->expr->kind != ExprKind::kCall) return Error("expected call");
      }
      RETURN_IF_ERROR(ExpectBlockEnd());
      int saved_loop_depth = loop_depth_;
      loop_depth_ = 0;  // a loop around a macro does not enclose its body
      Status st = ParseBody(s->body, {tag == "macro" ? "endmacro" : "endcall"}, &end);
      loop_depth_ = saved_loop_depth;
      RETURN_IF_ERROR(st);
      ScanSpecialNames(s->body, *s);
    } else if (tag == "filter") {
      s->kind = StmtKind::kFilterBlock;
      ASSIGN_OR_RETURN(s->expr, ParseFilterChain(nullptr, /*leading_pipe=*/false));
      RETURN_IF_ERROR(ExpectBlockEnd());
      RETURN_IF_ERROR(ParseBody(s->body, {"endfilter"}, &end));
    } else if (tag == "with") {
      s->kind = StmtKind::kWith;
      while (Cur().type != Tok::kBlockEnd) {
        if (!s->params.empty()) RETURN_IF_ERROR(ExpectOp(","));
        ASSIGN_OR_RETURN(std::string n, ExpectName());
        RETURN_IF_ERROR(ExpectOp("="));
        ASSIGN_OR_RETURN(ExprPtr v, ParseExpression(/*with_condexpr=*/true));
        s->params.push_back(std::move(n));
        s->defaults.push_back(std::move(v));
      }
      RETURN_IF_ERROR(ExpectBlockEnd());
      RETURN_IF_ERROR(ParseBody(s->body, {"endwith"}, &end));
    } else if (tag == "generation") {
      // transformers' AssistantTracker tag: marks assistant text, renders its body.
      s->kind = StmtKind::kScope;
      RETURN_IF_ERROR(ExpectBlockEnd());
      RETURN_IF_ERROR(ParseBody(s->body, {"endgeneration"}, &end));
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) return Error("'" + tag + "' outside of a loop");
      s->kind = tag == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      return FinishSimple(std::move(s));
    } else if (tag == "include" || tag == "extends" || tag == "import" || tag == "from" ||
               tag == "block") {
      return Error("'" + tag + "' is not supported in chat templates");
    } else {
      return Error("encountered unknown tag '" + tag + "'");
    }
    RETURN_IF_ERROR(ExpectBlockEnd());
    return s;
  }

  Result<std::unique_ptr<Stmt>> FinishSimple(std::unique_ptr<Stmt> s) {
    RETURN_IF_ERROR(ExpectBlockEnd());
    return s;
  }

  Status ParseParams(Stmt& s) {
    while (!IsOp(")")) {
      if (!s.params.empty()) RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp(")")) break;
      ASSIGN_OR_RETURN(std::string n, ExpectName());
      ExprPtr def;
      if (IsOp("=")) {
        Next();
        ASSIGN_OR_RETURN(def, ParseExpression(/*with_condexpr=*/true));
      } else if (!s.defaults.empty() && s.defaults.back()) {
        return Error("non-default argument follows default argument");
      }
      s.params.push_back(std::move(n));
      s.defaults.push_back(std::move(def));
    }
    Next();
    return OkStatus();
  }

  static void ScanExpr(const Expr* e, Stmt& s) {
    if (!e) return;
    if (e->kind == ExprKind::kName) {
      if (e->name == "varargs") s.uses_varargs = true;
      if (e->name == "kwargs") s.uses_kwargs = true;
      if (e->name == "caller") s.uses_caller = true;
    }
    for (const auto& c : e->children) ScanExpr(c.get(), s);
  }

  // Which of varargs/kwargs/caller a macro body reads (jinja2 decides the same way
  // whether extra arguments are accepted). Nested macros do not count.
  static void ScanSpecialNames(const Body& body, Stmt& s) {
    for (const auto& st : body) {
      if (st->kind == StmtKind::kMacro) continue;
      ScanExpr(st->expr.get(), s);
      ScanExpr(st->cond.get(), s);
      for (const auto& [test, b] : st->branches) {
        ScanExpr(test.get(), s);
        ScanSpecialNames(b, s);
      }
      for (const auto& d : st->defaults) ScanExpr(d.get(), s);
      ScanSpecialNames(st->body, s);
      ScanSpecialNames(st->else_body, s);
    }
  }

  // name | name, name | (name, name) | ns.attr (set only).
  Result<ExprPtr> ParseAssignTarget(bool allow_ns, const char* end_name) {
    int line = Cur().line;
    if (allow_ns && Cur().type == Tok::kName && Peek().type == Tok::kOp && Peek().text == ".") {
      auto e = Node(ExprKind::kGetAttr, line);
      auto obj = Node(ExprKind::kName, line);
      obj->name = Cur().text;
      Next();
      Next();
      ASSIGN_OR_RETURN(e->name, ExpectName());
      e->children.push_back(std::move(obj));
      return e;
    }
    bool paren = IsOp("(");
    if (paren) Next();
    auto tuple = Node(ExprKind::kTuple, line);
    bool comma = false;
    while (true) {
      if (Cur().type != Tok::kName) return Error("can't assign to " + Describe(Cur()));
      auto n = Node(ExprKind::kName, Cur().line);
      n->name = Cur().text;
      if (n->name == "true" || n->name == "false" || n->name == "none" || n->name == "True" ||
          n->name == "False" || n->name == "None") {
        return Error("can't assign to '" + n->name + "'");
      }
      Next();
      tuple->children.push_back(std::move(n));
      if (!IsOp(",")) break;
      comma = true;
      Next();
      if ((paren && IsOp(")")) || IsName(end_name) || IsOp("=")) break;
    }
    if (paren) RETURN_IF_ERROR(ExpectOp(")"));
    if (!comma && !paren) return std::move(tuple->children[0]);
    if (!comma && paren) return std::move(tuple->children[0]);
    return tuple;
  }

  // ---- expressions ---------------------------------------------------------------

  bool IsTupleEnd(const std::set<std::string>& extra) const {
    const Token& t = Cur();
    if (t.type == Tok::kVarEnd || t.type == Tok::kBlockEnd || t.type == Tok::kEof) return true;
    if (t.type == Tok::kOp && t.text == ")") return true;
    return t.type == Tok::kName && extra.count(t.text) > 0;
  }

  Result<ExprPtr> ParseTuple(bool with_condexpr, const std::set<std::string>& extra_end,
                             bool explicit_parens = false) {
    int line = Cur().line;
    std::vector<ExprPtr> items;
    bool comma = false;
    while (true) {
      if (!items.empty()) {
        if (!IsOp(",")) break;
        Next();
        comma = true;
      }
      if (IsTupleEnd(extra_end)) break;
      ASSIGN_OR_RETURN(ExprPtr e, ParseExpression(with_condexpr));
      items.push_back(std::move(e));
    }
    if (!comma) {
      if (items.empty()) {
        if (!explicit_parens) return Error("expected an expression, got " + Describe(Cur()));
      } else {
        return std::move(items[0]);
      }
    }
    auto t = Node(ExprKind::kTuple, line);
    t->children = std::move(items);
    return t;
  }

  Result<ExprPtr> ParseExpression(bool with_condexpr) {
    DepthGuard guard(depth_);
    if (depth_ > kMaxNesting) return Error("expression nested too deeply");
    if (!with_condexpr) return ParseOr();
    ASSIGN_OR_RETURN(ExprPtr expr, ParseOr());
    while (IsName("if")) {
      int line = Cur().line;
      Next();
      ASSIGN_OR_RETURN(ExprPtr cond, ParseOr());
      ExprPtr other;
      if (IsName("else")) {
        Next();
        ASSIGN_OR_RETURN(other, ParseExpression(/*with_condexpr=*/true));
      }
      auto c = Node(ExprKind::kCond, line);
      c->children.push_back(std::move(cond));
      c->children.push_back(std::move(expr));
      c->children.push_back(std::move(other));
      expr = std::move(c);
    }
    return expr;
  }

  Result<ExprPtr> ParseOr() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
    while (IsName("or")) {
      auto n = Node(ExprKind::kOr, Cur().line);
      Next();
      ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
      n->children.push_back(std::move(left));
      n->children.push_back(std::move(right));
      left = std::move(n);
    }
    return left;
  }

  Result<ExprPtr> ParseAnd() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
    while (IsName("and")) {
      auto n = Node(ExprKind::kAnd, Cur().line);
      Next();
      ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
      n->children.push_back(std::move(left));
      n->children.push_back(std::move(right));
      left = std::move(n);
    }
    return left;
  }

  Result<ExprPtr> ParseNot() {
    if (IsName("not")) {
      DepthGuard guard(depth_);
      if (depth_ > kMaxNesting) return Error("expression nested too deeply");
      auto n = Node(ExprKind::kNot, Cur().line);
      Next();
      ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
      n->children.push_back(std::move(operand));
      return n;
    }
    return ParseCompare();
  }

  Result<ExprPtr> ParseCompare() {
    int line = Cur().line;
    ASSIGN_OR_RETURN(ExprPtr first, ParseMath1());
    auto cmp = Node(ExprKind::kCompare, line);
    cmp->children.push_back(std::move(first));
    while (true) {
      std::string op;
      if (Cur().type == Tok::kOp && (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" ||
                                     Cur().text == "<=" || Cur().text == ">" || Cur().text == ">=")) {
        op = Cur().text;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && Peek().type == Tok::kName && Peek().text == "in") {
        op = "notin";
        Next();
        Next();
      } else {
        break;
      }
      ASSIGN_OR_RETURN(ExprPtr rhs, ParseMath1());
      cmp->ops.push_back(op);
      cmp->children.push_back(std::move(rhs));
    }
    if (cmp->ops.empty()) return std::move(cmp->children[0]);
    return cmp;
  }

  ExprPtr Binary(std::string op, ExprPtr l, ExprPtr r, int line) {
    auto n = Node(ExprKind::kBinary, line);
    n->name = std::move(op);
    n->children.push_back(std::move(l));
    n->children.push_back(std::move(r));
    return n;
  }

  Result<ExprPtr> ParseMath1() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseConcat());
    while (IsOp("+") || IsOp("-")) {
      std::string op = Cur().text;
      int line = Cur().line;
      Next();
      ASSIGN_OR_RETURN(ExprPtr right, ParseConcat());
      left = Binary(op, std::move(left), std::move(right), line);
    }
    return left;
  }

  Result<ExprPtr> ParseConcat() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseMath2());
    while (IsOp("~")) {
      int line = Cur().line;
      Next();
      ASSIGN_OR_RETURN(ExprPtr right, ParseMath2());
      left = Binary("~", std::move(left), std::move(right), line);
    }
    return left;
  }

  Result<ExprPtr> ParseMath2() {
    ASSIGN_OR_RETURN(ExprPtr left, ParsePow());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      std::string op = Cur().text;
      int line = Cur().line;
      Next();
      ASSIGN_OR_RETURN(ExprPtr right, ParsePow());
      left = Binary(op, std::move(left), std::move(right), line);
    }
    return left;
  }

  Result<ExprPtr> ParsePow() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseUnary(/*with_filter=*/true));
    while (IsOp("**")) {
      int line = Cur().line;
      Next();
      ASSIGN_OR_RETURN(ExprPtr right, ParseUnary(/*with_filter=*/true));
      left = Binary("**", std::move(left), std::move(right), line);
    }
    return left;
  }

  Result<ExprPtr> ParseUnary(bool with_filter) {
    DepthGuard guard(depth_);
    if (depth_ > kMaxNesting) return Error("expression nested too deeply");
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      node = Node(IsOp("-") ? ExprKind::kNeg : ExprKind::kPos, Cur().line);
      Next();
      ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(/*with_filter=*/false));
      node->children.push_back(std::move(operand));
    } else {
      ASSIGN_OR_RETURN(node, ParsePrimary());
    }
    ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
    if (with_filter) {
      ASSIGN_OR_RETURN(node, ParseFilterExpr(std::move(node)));
    }
    return node;
  }

  Result<ExprPtr> ParsePrimary() {
    const Token& t = Cur();
    int line = t.line;
    switch (t.type) {
      case Tok::kName: {
        auto n = Node(ExprKind::kLiteral, line);
        if (t.text == "true" || t.text == "True") n->value = Value::Bool(true);
        else if (t.text == "false" || t.text == "False") n->value = Value::Bool(false);
        else if (t.text == "none" || t.text == "None") n->value = Value::None();
        else { n->kind = ExprKind::kName; n->name = t.text; }
        Next();
        return n;
      }
      case Tok::kString: {
        std::string s;
        while (Cur().type == Tok::kString) {
          s += Cur().text;
          Next();
        }
        auto n = Node(ExprKind::kLiteral, line);
        n->value = Value::Str(std::move(s));
        return n;
      }
      case Tok::kInt:
      case Tok::kFloat: {
        auto n = Node(ExprKind::kLiteral, line);
        n->value = t.type == Tok::kInt ? Value::Int(t.int_value) : Value::Float(t.float_value);
        Next();
        return n;
      }
      case Tok::kOp:
        if (t.text == "(") {
          Next();
          ASSIGN_OR_RETURN(ExprPtr e, ParseTuple(/*with_condexpr=*/true, {}, /*explicit_parens=*/true));
          RETURN_IF_ERROR(ExpectOp(")"));
          return e;
        }
        if (t.text == "[") {
          Next();
          auto n = Node(ExprKind::kList, line);
          while (!IsOp("]")) {
            if (!n->children.empty()) RETURN_IF_ERROR(ExpectOp(","));
            if (IsOp("]")) break;
            ASSIGN_OR_RETURN(ExprPtr e, ParseExpression(/*with_condexpr=*/true));
            n->children.push_back(std::move(e));
          }
          Next();
          return n;
        }
        if (t.text == "{") {
          Next();
          auto n = Node(ExprKind::kDict, line);
          while (!IsOp("}")) {
            if (!n->children.empty()) RETURN_IF_ERROR(ExpectOp(","));
            if (IsOp("}")) break;
            ASSIGN_OR_RETURN(ExprPtr k, ParseExpression(/*with_condexpr=*/true));
            RETURN_IF_ERROR(ExpectOp(":"));
            ASSIGN_OR_RETURN(ExprPtr v, ParseExpression(/*with_condexpr=*/true));
            n->children.push_back(std::move(k));
            n->children.push_back(std::move(v));
          }
          Next();
          return n;
        }
        break;
      default:
        break;
    }
    return Unexpected();
  }

  Result<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      int line = Cur().line;
      if (IsOp(".")) {
        Next();
        if (Cur().type == Tok::kName) {
          auto n = Node(ExprKind::kGetAttr, line);
          n->name = Cur().text;
          n->children.push_back(std::move(node));
          node = std::move(n);
          Next();
        } else if (Cur().type == Tok::kInt) {
          auto n = Node(ExprKind::kGetItem, line);
          auto idx = Node(ExprKind::kLiteral, line);
          idx->value = Value::Int(Cur().int_value);
          n->children.push_back(std::move(node));
          n->children.push_back(std::move(idx));
          node = std::move(n);
          Next();
        } else {
          return Error("expected name or number after '.'");
        }
      } else if (IsOp("[")) {
        Next();
        ASSIGN_OR_RETURN(node, ParseSubscript(std::move(node), line));
      } else if (IsOp("(")) {
        ASSIGN_OR_RETURN(node, ParseCall(std::move(node), ExprKind::kCall, ""));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> ParseSubscript(ExprPtr obj, int line) {
    std::vector<ExprPtr> parts;  // slice parts, or a single index
    bool is_slice = false;
    ExprPtr cur;
    if (!IsOp(":")) {
      ASSIGN_OR_RETURN(cur, ParseExpression(/*with_condexpr=*/true));
    }
    if (IsOp(":")) {
      is_slice = true;
      parts.push_back(std::move(cur));
      for (int k = 0; k < 2 && IsOp(":"); ++k) {
        Next();
        ExprPtr p;
        if (!IsOp(":") && !IsOp("]")) {
          ASSIGN_OR_RETURN(p, ParseExpression(/*with_condexpr=*/true));
        }
        parts.push_back(std::move(p));
      }
      while (parts.size() < 3) parts.push_back(nullptr);
    }
    RETURN_IF_ERROR(ExpectOp("]"));
    auto n = Node(is_slice ? ExprKind::kSlice : ExprKind::kGetItem, line);
    n->children.push_back(std::move(obj));
    if (is_slice) {
      for (auto& p : parts) n->children.push_back(std::move(p));
    } else {
      n->children.push_back(std::move(cur));
    }
    return n;
  }

  // `(` args `)` after a callee, filter or test; positional then name=value.
  Result<ExprPtr> ParseCall(ExprPtr callee, ExprKind kind, const std::string& name) {
    auto n = Node(kind, Cur().line);
    n->name = name;
    n->children.push_back(std::move(callee));
    RETURN_IF_ERROR(ExpectOp("("));
    bool first = true;
    while (!IsOp(")")) {
      if (!first) RETURN_IF_ERROR(ExpectOp(","));
      first = false;
      if (IsOp(")")) break;
      if (IsOp("*") || IsOp("**")) return Error("*args and **kwargs in calls are not supported");
      if (Cur().type == Tok::kName && Peek().type == Tok::kOp && Peek().text == "=") {
        std::string kw = Cur().text;
        Next();
        Next();
        ASSIGN_OR_RETURN(ExprPtr v, ParseExpression(/*with_condexpr=*/true));
        n->kw_names.push_back(std::move(kw));
        n->children.push_back(std::move(v));
      } else {
        if (!n->kw_names.empty()) return Error("positional argument follows keyword argument");
        ASSIGN_OR_RETURN(ExprPtr v, ParseExpression(/*with_condexpr=*/true));
        n->children.push_back(std::move(v));
      }
    }
    Next();
    return n;
  }

  Result<std::string> ParseDottedName() {
    ASSIGN_OR_RETURN(std::string n, ExpectName());
    while (IsOp(".") && Peek().type == Tok::kName) {
      Next();
      n += "." + Cur().text;
      Next();
    }
    return n;
  }

  // `| f(args) | g` applied to `operand` (null inside {% filter %} / {% set x | f %}).
  Result<ExprPtr> ParseFilterChain(ExprPtr operand, bool leading_pipe = true) {
    bool first = true;
    while ((first && !leading_pipe) || IsOp("|")) {
      if (!(first && !leading_pipe)) Next();
      first = false;
      int line = Cur().line;
      ASSIGN_OR_RETURN(std::string name, ParseDottedName());
      if (IsOp("(")) {
        ASSIGN_OR_RETURN(operand, ParseCall(std::move(operand), ExprKind::kFilter, name));
      } else {
        auto n = Node(ExprKind::kFilter, line);
        n->name = name;
        n->children.push_back(std::move(operand));
        operand = std::move(n);
      }
    }
    return operand;
  }

  Result<ExprPtr> ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        ASSIGN_OR_RETURN(node, ParseFilterChain(std::move(node)));
      } else if (IsName("is")) {
        int line = Cur().line;
        Next();
        bool negated = false;
        if (IsName("not")) {
          negated = true;
          Next();
        }
        ASSIGN_OR_RETURN(std::string name, ParseDottedName());
        ExprPtr test;
        if (IsOp("(")) {
          ASSIGN_OR_RETURN(test, ParseCall(std::move(node), ExprKind::kTest, name));
        } else {
          test = Node(ExprKind::kTest, line);
          test->name = name;
          test->children.push_back(std::move(node));
          const Token& t = Cur();
          bool arg_start = t.type == Tok::kName || t.type == Tok::kString || t.type == Tok::kInt ||
                           t.type == Tok::kFloat ||
                           (t.type == Tok::kOp && (t.text == "(" || t.text == "[" || t.text == "{"));
          if (arg_start && !IsName("else") && !IsName("or") && !IsName("and")) {
            if (IsName("is")) return Error("You cannot chain multiple tests with is");
            ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
            ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
            test->children.push_back(std::move(arg));
          }
        }
        test->negated = negated;
        node = std::move(test);
      } else if (IsOp("(")) {
        ASSIGN_OR_RETURN(node, ParseCall(std::move(node), ExprKind::kCall, ""));
      } else {
        return node;
      }
    }
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Result<std::unique_ptr<Program>> ParseProgram(std::string_view source) {
  ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(source));
  Parser parser(std::move(tokens));
  return parser.Run();
}

}  // namespace tide::jinja
