// Syntax tree of a parsed template. Nodes are plain structs owned by their parent; the
// tree is immutable after parsing, so one Program is shared by concurrent renders.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace tide::jinja {

enum class ExprKind {
  kLiteral,  // value
  kName,     // name
  kList,     // children = items
  kTuple,    // children = items
  kDict,     // children = key0, value0, key1, value1, ...
  kGetAttr,  // children[0].name  (jinja2 getattr: attribute, then item)
  kGetItem,  // children[0][children[1]]  (jinja2 getitem: item, then attribute)
  kSlice,    // children[0][children[1]:children[2]:children[3]], null = omitted
  kCall,     // children[0](children[1..]); the last kw_names.size() are keyword args
  kFilter,   // children[0] | name(children[1..]); children[0] null inside {% filter %}
  kTest,     // children[0] is [not] name(children[1..])
  kNeg,      // -children[0]
  kPos,      // +children[0]
  kNot,      // not children[0]
  kBinary,   // children[0] op children[1]; op in + - * / // % ** ~
  kCompare,  // children[0] ops[0] children[1] ops[1] children[2] ...
  kAnd,
  kOr,
  kCond,     // children[1] if children[0] else children[2] (null = undefined)
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  int line = 1;
  Value value;                // kLiteral
  std::string name;           // kName, kGetAttr, kFilter, kTest; the operator of kBinary
  std::vector<std::unique_ptr<Expr>> children;
  std::vector<std::string> kw_names;  // kCall/kFilter/kTest keyword argument names
  std::vector<std::string> ops;       // kCompare: == != < <= > >= in notin
  bool negated = false;               // kTest: `is not`
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

enum class StmtKind {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches (test, body); else_body
  kFor,          // for target in expr [if cond]: body, else else_body
  kSet,          // set target = expr
  kSetBlock,     // set target [| filter]: body (filter in expr, may be null)
  kMacro,        // macro name(params = defaults): body
  kCallBlock,    // call(params) expr: body  (body becomes `caller`)
  kFilterBlock,  // filter expr: body
  kWith,         // with targets = values: body
  kScope,        // body run as is ({% generation %})
  kBreak,
  kContinue,
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  int line = 1;
  std::string text;
  std::unique_ptr<Expr> expr;
  std::unique_ptr<Expr> target;
  std::unique_ptr<Expr> cond;
  std::vector<std::pair<std::unique_ptr<Expr>, Body>> branches;
  Body body;
  Body else_body;
  // kMacro / kCallBlock parameters; defaults[i] null = required. kWith: targets/values.
  std::string name;
  std::vector<std::string> params;
  std::vector<std::unique_ptr<Expr>> defaults;
  bool uses_varargs = false;  // the body reads `varargs`, `kwargs`, `caller`
  bool uses_kwargs = false;
  bool uses_caller = false;
};

struct Program {
  Body body;
};

// Parses a token stream into a Program; kInvalidArgument "chat template line N: ..."
// on a syntax error or an unsupported tag (include, extends, import, block).
Result<std::unique_ptr<Program>> ParseProgram(std::string_view source);

}  // namespace tide::jinja
