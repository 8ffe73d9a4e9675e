//! store_encrypted SRC DST PASSPHRASE_FILE [age1RECIPIENT...]: store SRC as
//! an encrypted archive for the passphrase (the file's first line) and the
//! recipients. For the binding tests (scripts/c-tests.sh) while the CLI
//! cannot store encrypted archives; `hexz store --encrypt` replaces it.
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: store_encrypted SRC DST PASSPHRASE_FILE [age1RECIPIENT...]".into());
    }
    let to = hexz_io::keys::EncryptTo {
        passphrases: vec![hexz_io::keys::read_passphrase_file(Path::new(&args[2]))?],
        recipients: args[3..].iter().map(|r| hexz_io::keys::parse_recipient(r)).collect::<Result<_, _>>()?,
        cost: None,
    };
    hexz_io::Store::from_path(&args[0])
        .to(hexz_io::Location::Path(args[1].clone().into()))
        .encryption(Some(to.encryption()?))
        .run()?;
    Ok(())
}
