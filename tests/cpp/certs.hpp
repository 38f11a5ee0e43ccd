// Test certificates for the C++ wrapper tests, made with the openssl
// command in a fresh temporary directory.
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>

namespace certs {

// Runs `cmd` in `dir` (the openssl calls), quietly.
inline bool sh(const std::string &dir, const std::string &cmd) {
    return std::system(("cd " + dir + " && { " + cmd + "; } >/dev/null 2>&1").c_str()) == 0;
}

// A CA (ca.pem) and leaf certificates for localhost/127.0.0.1 signed by it:
// "a" and "b" (servers) and "client" ("" on failure).
inline std::string make() {
    char tmpl[] = "/tmp/libws-cpp-tls-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return "";
    std::string dir = tmpl;
    if (!sh(dir, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj '/CN=cpp test CA' "
                 "-keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE "
                 "-addext keyUsage=critical,keyCertSign"))
        return "";
    std::ofstream(dir + "/ext.cnf") << "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n";
    for (const char *n : {"a", "b", "client"}) {
        std::string name = n;
        if (!sh(dir, "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout " + name +
                         ".key -out " + name + ".csr && openssl x509 -req -in " + name +
                         ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out " + name + ".pem"))
            return "";
    }
    return dir;
}

inline void remove(const std::string &dir) { (void)sh("/tmp", "rm -rf " + dir); }

} // namespace certs
