#include "tokenizer/tokenizer.h"
#include "formats/gguf.h"
namespace tide {
Result<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile&) { return Unimplemented("todo"); }
}
